package io.github.qcowloom.alloc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.ImageTooLargeException;
import org.junit.jupiter.api.Test;

/** The recount's paged counters: the refcount width's maximum, wide counts, skipping, and the memory bound. */
class ClusterCountsTest {
    private static final long BOUND = 64L << 20;

    @Test
    void sixteenBitCountsStopAtTheirMaximum() throws Exception {
        ClusterCounts c = new ClusterCounts(1 << 20, 0xFFFF, BOUND);
        for (int i = 0; i < 0xFFFF; i++) {
            assertTrue(c.increment(5));
        }
        assertFalse(c.increment(5), "65536th reference past a 16-bit maximum");
        assertEquals(0xFFFF, c.get(5));
        assertEquals(0, c.get(4));
    }

    @Test
    void widerCountsGoPast16Bits() throws Exception {
        ClusterCounts c = new ClusterCounts(1 << 20, 0xFFFFFFFFL, BOUND);
        for (int i = 0; i < 70_000; i++) {
            assertTrue(c.increment(4097));
        }
        assertEquals(70_000, c.get(4097));
        assertEquals(0, c.get(4096));
        ClusterCounts narrow = new ClusterCounts(16, 1, BOUND);
        assertTrue(narrow.increment(3));
        assertFalse(narrow.increment(3));
        assertEquals(1, narrow.get(3));
        ClusterCounts widest = new ClusterCounts(16, Long.MAX_VALUE, BOUND);
        for (int i = 0; i < 0x10005; i++) {
            widest.increment(0);
        }
        assertEquals(0x10005, widest.get(0));
    }

    @Test
    void pagesAreAllocatedOnlyWhereReferencesLand() throws Exception {
        // 128 Mi clusters: a 64 GiB file of 512-byte clusters. Two references cost two pages.
        ClusterCounts c = new ClusterCounts(128L << 20, 0xFFFF, BOUND);
        long before = c.memory();
        c.increment(3);
        c.increment((100L << 20) + 7);
        assertTrue(c.memory() - before <= 2 * (2L * ClusterCounts.PAGE_CLUSTERS + 16), "memory " + c.memory());
        assertEquals(0, c.nextCounted(0));
        assertEquals(100L << 20, c.nextCounted(ClusterCounts.PAGE_CLUSTERS));
        assertEquals(Long.MAX_VALUE, c.nextCounted((100L << 20) + ClusterCounts.PAGE_CLUSTERS));
    }

    @Test
    void pastTheBoundTheRecountIsRefusedWithATypedError() throws Exception {
        ClusterCounts c = new ClusterCounts(1 << 20, 0xFFFF, 20_000);
        c.increment(0);
        c.increment(ClusterCounts.PAGE_CLUSTERS);
        ImageTooLargeException e = assertThrows(ImageTooLargeException.class,
                () -> c.increment(2 * ClusterCounts.PAGE_CLUSTERS));
        assertTrue(e.getMessage().contains("Recounting the references needs more than"), e.getMessage());
        assertThrows(ImageTooLargeException.class, () -> new ClusterCounts(Integer.MAX_VALUE, 0xFFFF, 1 << 20));
    }
}
