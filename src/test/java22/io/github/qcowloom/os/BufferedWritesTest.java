package io.github.qcowloom.os;

import static io.github.qcowloom.os.BufferedWrites.MAX_BACKOFF;
import static io.github.qcowloom.os.BufferedWrites.MIN_BACKOFF;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Which buffered writes an event loop's thread makes itself, on a clock of the test's own. */
class BufferedWritesTest {
    private static final long MS = TimeUnit.MILLISECONDS.toNanos(1);
    private static final long T0 = 1_000_000 * MS; // any origin: System.nanoTime may be negative, or wrap

    @Test
    void shortPageAlignedWritesAreMadeOnTheLoopOthersGoThroughTheRing() {
        BufferedWrites w = new BufferedWrites(T0);
        assertTrue(w.onLoop(1L << 40, BufferedWrites.MAX_ON_LOOP, T0));
        assertEquals(0, BufferedWrites.PAGE_SIZE % 4096, "the kernel's page size, 4 KiB or a multiple");
        assertTrue(w.onLoop(BufferedWrites.PAGE_SIZE, BufferedWrites.PAGE_SIZE, T0));
        assertFalse(w.onLoop(512, BufferedWrites.PAGE_SIZE, T0), "an unaligned offset may read its page first");
        assertFalse(w.onLoop(BufferedWrites.PAGE_SIZE, 512, T0), "so may an unaligned length");
        assertFalse(w.onLoop(0, BufferedWrites.MAX_ON_LOOP + 4096, T0), "a long copy would hold the loop");
    }

    @Test
    void noWriteIsMadeOnTheLoopWhileAnotherIsInTheRing() {
        BufferedWrites w = new BufferedWrites(T0);
        w.toRing();
        w.toRing();
        assertFalse(w.onLoop(0, 4096, T0), "it would wait for the other's inode lock");
        w.backFromRing();
        assertFalse(w.onLoop(0, 4096, T0));
        w.backFromRing();
        assertTrue(w.onLoop(0, 4096, T0));
    }

    @Test
    void aWriteHeldUpSendsTheNextOnesThroughTheRingForAWhile() {
        BufferedWrites w = new BufferedWrites(T0);
        assertFalse(w.took(T0, 10_000, 4096), "10 us for 4 KiB is a copy");
        assertFalse(w.took(T0, BufferedWrites.HELD_UP_NANOS + (256 << 10), 256 << 10), "at the limit, still a copy");
        long start = T0 + 5 * MS;
        assertTrue(w.took(start, 3 * MS, 4096));
        assertEquals(MIN_BACKOFF, w.backoff());
        long end = start + 3 * MS;
        assertFalse(w.onLoop(0, 4096, end));
        assertFalse(w.onLoop(0, 4096, end + MIN_BACKOFF - 1));
        assertTrue(w.onLoop(0, 4096, end + MIN_BACKOFF));
    }

    @Test
    void theBackOffDoublesWhileHoldUpsKeepComingAndStartsOverAfterAQuietSpell() {
        BufferedWrites w = new BufferedWrites(T0);
        long now = T0;
        long expected = MIN_BACKOFF;
        for (int i = 0; i < 10; i++) {
            assertTrue(w.onLoop(0, 4096, now));
            assertTrue(w.took(now, 2 * MS, 4096));
            assertEquals(expected, w.backoff(), "hold-up " + i);
            now += 2 * MS + w.backoff(); // the first write after the back-off is held up again
            expected = Math.min(expected * 2, MAX_BACKOFF);
        }
        assertEquals(MAX_BACKOFF, w.backoff());
        now += MAX_BACKOFF; // a quiet spell as long as the longest back-off
        assertTrue(w.onLoop(0, 4096, now));
        assertTrue(w.took(now, 2 * MS, 4096));
        assertEquals(MIN_BACKOFF, w.backoff());
    }
}
