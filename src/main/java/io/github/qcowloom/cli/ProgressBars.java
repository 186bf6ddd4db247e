package io.github.qcowloom.cli;

import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;

/** The progress bar of a command's {@code -p}, on stderr, in MiB of the guest disk; null where none is shown. */
final class ProgressBars {
    private ProgressBars() {
    }

    /** A bar over {@code bytes} for {@code task}, or null unless {@code shown}. */
    static ProgressBar open(boolean shown, String task, long bytes) {
        return shown ? new ProgressBarBuilder().setTaskName(task).setInitialMax(bytes).setUnit("MiB", 1 << 20)
                .build() : null;
    }

    /** Moves {@code bar} (if any) on by {@code bytes}. */
    static void step(ProgressBar bar, long bytes) {
        if (bar != null && bytes > 0) {
            bar.stepBy(bytes);
        }
    }
}
