package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

/**
 * The harness itself: a workload's marks and exit status come back, a failing workload fails
 * {@link GuestResult#requireSuccess()}, and a hung one is killed at the timeout with the console's tail in the
 * failure. Long (two boots): runs with {@code -Pguest-long}.
 */
class GuestVmTest {
    @Test
    void marksAndExitStatusComeBackAndAHangIsKilledAtTheTimeout() {
        assumeTrue(Boolean.getBoolean("guest.long"), "a long guest test: run with -Pguest-long");
        GuestVm.assumeAvailable();
        GuestResult r = GuestVm.boot(GuestVm.Options.defaults(), """
                mark kernel $(uname -r)
                mark cpus $(nproc)
                mark two words
                false
                mark never
                """);
        assertEquals(1, r.workloadStatus(), r.tail(40));
        assertEquals(List.of(GuestKernel.find().orElseThrow().version()), r.values("kernel"));
        assertEquals(List.of("1"), r.values("cpus"));
        assertEquals(List.of("words"), r.values("two"));
        assertEquals(List.of(), r.values("never"), "set -e stops the workload at the first failure");
        assertThrows(AssertionFailedError.class, r::requireSuccess);

        try (GuestVm vm = GuestVm.start(GuestVm.Options.defaults(), "mark waiting\nsleep 600\n")) {
            assertEquals(List.of(""), vm.awaitMarks("waiting", 1, Duration.ofSeconds(120)));
            AssertionFailedError hang = assertThrows(AssertionFailedError.class,
                    () -> vm.awaitExit(Duration.ofSeconds(3)));
            assertTrue(hang.getMessage().contains("did not finish within 3 s"), hang.getMessage());
            assertTrue(hang.getMessage().contains("@@MARK waiting"), "the console tail: " + hang.getMessage());
        }
    }
}
