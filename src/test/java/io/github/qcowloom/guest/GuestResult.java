package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * What a guest run left: the exit status of its workload ({@code -1} when the guest never reported one: a
 * kernel panic, a hang killed at the timeout, a VM killed by the test), the marks it printed in order, the last
 * console lines, QEMU's own exit code and how long the VM ran.
 */
public record GuestResult(int workloadStatus, List<Mark> marks, List<String> consoleTail, int qemuExitCode,
        Duration elapsed) {

    /** One {@code mark NAME VALUE...} line of the workload: {@code @@MARK NAME VALUE...} on the console. */
    public record Mark(String name, String value) {
    }

    public GuestResult {
        marks = List.copyOf(marks);
        consoleTail = List.copyOf(consoleTail);
    }

    /** The values of every mark called {@code name}, in the order printed. */
    public List<String> values(String name) {
        return marks.stream().filter(m -> m.name().equals(name)).map(Mark::value).toList();
    }

    /** The value of the first mark called {@code name}. */
    public Optional<String> value(String name) {
        return marks.stream().filter(m -> m.name().equals(name)).map(Mark::value).findFirst();
    }

    /** Fails the test, showing the console's tail, unless the workload exited 0. */
    public GuestResult requireSuccess() {
        if (workloadStatus != 0) {
            fail((workloadStatus < 0 ? "the guest reported no exit status" : "the guest workload exited "
                    + workloadStatus) + " (QEMU exit " + qemuExitCode + ", " + elapsed.toMillis() + " ms)\n"
                    + tail(60));
        }
        return this;
    }

    /** The last {@code lines} console lines, for failure messages. */
    public String tail(int lines) {
        return GuestVm.formatTail(consoleTail, lines);
    }
}
