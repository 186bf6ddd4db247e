package io.github.qcowloom.cli;

import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;

/**
 * The progress bar of a command's {@code -p}, on stderr: in MiB of the guest disk, or in percent for work not counted
 * in bytes (amend); null where none is shown.
 */
final class ProgressBars {
    private ProgressBars() {
    }

    /** A bar over {@code bytes} for {@code task}, or null unless {@code shown}. */
    static ProgressBar open(boolean shown, String task, long bytes) {
        return shown ? new ProgressBarBuilder().setTaskName(task).setInitialMax(bytes).setUnit("MiB", 1 << 20)
                .build() : null;
    }

    /** A bar in percent for {@code task}, or null unless {@code shown}: for work not counted in bytes. */
    static ProgressBar openPercent(boolean shown, String task) {
        return shown ? new ProgressBarBuilder().setTaskName(task).setInitialMax(100).setUnit("%", 1).build() : null;
    }

    /** Moves {@code bar} (if any) to {@code fraction} (0 to 1) of its length. */
    static void stepTo(ProgressBar bar, double fraction) {
        if (bar != null) {
            bar.stepTo((long) (fraction * bar.getMax()));
        }
    }

    /** Moves {@code bar} (if any) on by {@code bytes}. */
    static void step(ProgressBar bar, long bytes) {
        if (bar != null && bytes > 0) {
            bar.stepBy(bytes);
        }
    }
}
