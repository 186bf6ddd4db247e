package io.github.qcowloom.check;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

/** CheckResult's JSON field set and order, exit codes, and the human summary, as qemu-img 7.2 prints them. */
class CheckResultTest {
    private static CheckResult result(long errors, long corruptions, long leaks) {
        return new CheckResult("f.qcow2", "qcow2", errors, 786432, corruptions, leaks, 0, 0, 16384, 1, 0, 0,
                List.of());
    }

    @Test
    void fieldsAreQemusOnlyWhenNonZero() {
        assertEquals(List.of("image-end-offset", "total-clusters", "check-errors", "leaks", "allocated-clusters",
                "filename", "format"), List.copyOf(result(0, 0, 2).fields().keySet()));
        CheckResult fixed = result(0, 0, 0).withFixed(2, 3, List.of());
        assertEquals(List.of("image-end-offset", "total-clusters", "corruptions-fixed", "check-errors",
                "leaks-fixed", "allocated-clusters", "filename", "format"), List.copyOf(fixed.fields().keySet()));
    }

    @Test
    void exitCodes() {
        assertEquals(0, result(0, 0, 0).exitCode());
        assertEquals(1, result(1, 2, 3).exitCode());
        assertEquals(2, result(0, 2, 3).exitCode());
        assertEquals(3, result(0, 0, 3).exitCode());
    }

    @Test
    void humanSummary() {
        assertEquals("\n2 leaked clusters were found on the image.\n"
                + "This means waste of disk space, but no harm to data.\n"
                + "1/16384 = 0.01% allocated, 0.00% fragmented, 0.00% compressed clusters\n"
                + "Image end offset: 786432\n", HumanReport.of(result(0, 0, 2)));
    }
}
