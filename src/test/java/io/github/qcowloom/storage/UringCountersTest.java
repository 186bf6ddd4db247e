package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

/** The line bench prints about the io_uring queue, from two moments' counts. */
class UringCountersTest {
    @Test
    void describesTheRequestsBetweenTwoMoments() {
        UringCounters before = new UringCounters(10, 5, 3, 1, 1_000_000, 2_000_000);
        UringCounters after = new UringCounters(110, 6, 28, 9, 1_000_000 + 100 * 480_000L,
                2_000_000 + 100 * 250_000L);
        assertEquals("io_uring: 99% of 101 requests through the ring, 4.0 per submitting call; prepared to "
                + "completed 480 us, completed to resumed 250 us (means)", after.since(before).describe());
    }

    @Test
    void saysWhenEveryRequestWasAloneAndNothingWhenNoneWasMade() {
        assertEquals("io_uring: 0% of 7 requests through the ring (each alone in the queue, made directly)",
                new UringCounters(0, 7, 0, 0, 0, 0).describe());
        assertNull(new UringCounters(0, 0, 0, 0, 0, 0).describe());
    }
}
