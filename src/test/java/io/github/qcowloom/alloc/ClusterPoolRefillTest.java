package io.github.qcowloom.alloc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.Ticker;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;

/**
 * How the pool refills once demand has grown its thresholds to the cap: still in batches, never a cluster at a
 * time (which cost a refcount update and a fallocate per write).
 */
class ClusterPoolRefillTest {
    /**
     * The pool's clock, moved only by the test: left alone, no decay and no idle drain, so only takes change the
     * thresholds. The allocator's sleeps are real, and short, so that it sees a move soon.
     */
    private static final class TestClock implements Ticker {
        private final AtomicLong now = new AtomicLong();

        void advance(long nanos) {
            now.addAndGet(nanos);
        }

        @Override
        public long nanoTime() {
            return now.get();
        }

        @Override
        public void parkNanos(long nanos) {
            LockSupport.parkNanos(Math.min(nanos, TimeUnit.MILLISECONDS.toNanos(5)));
        }
    }

    /** Hands out consecutive clusters and records each allocation's size; the allocator waits until opened. */
    private static final class RecordingSource implements ClusterSource {
        final CountDownLatch open = new CountDownLatch(1);
        /** Counted down when the allocator first asks: by then it has read its clock's start. */
        final CountDownLatch asked = new CountDownLatch(1);
        final List<Integer> sizes = new CopyOnWriteArrayList<>();
        private long next = 1 << 20; // only the allocator thread allocates

        @Override
        public List<NewCluster> allocate(int n) throws java.io.InterruptedIOException {
            asked.countDown();
            try {
                if (!open.await(10, TimeUnit.SECONDS)) {
                    throw new java.io.InterruptedIOException("the test never opened the source");
                }
            } catch (InterruptedException e) {
                throw new java.io.InterruptedIOException();
            }
            sizes.add(n);
            List<NewCluster> out = new ArrayList<>(n);
            for (int i = 0; i < n; i++, next += 1 << 16) {
                out.add(new NewCluster(new HostOffset(next), true));
            }
            return out;
        }

        @Override
        public void release(List<NewCluster> clusters) {
        }

        @Override
        public void idle() {
        }
    }

    @Test
    void aPoolGrownToItsCapStillRefillsInBatches() throws Exception {
        RecordingSource source = new RecordingSource();
        ClusterPool pool = new ClusterPool(source, 16, 64, 1024, new TestClock());
        try {
            growToCap(pool);
            int low = pool.low();
            int mid = (low + pool.high()) / 2;
            source.open.countDown();
            awaitSize(pool, mid);

            // Take the pool to just below low: one refill back to the midpoint.
            int before = source.sizes.size();
            for (int i = mid; i >= low; i--) {
                assertTrue(pool.take().isPresent(), "the pool ran dry above its low threshold");
            }
            awaitSize(pool, mid);
            // From 255 to 640: 385 clusters, in allocations of REFILL_BATCH (32) and the rest. With low at high,
            // as before the fix, it was one cluster in one allocation.
            List<Integer> refill = source.sizes.subList(before, source.sizes.size());
            assertEquals(385, refill.stream().mapToInt(Integer::intValue).sum(), "refill " + refill);
            assertEquals(13, refill.size(), "the refill's allocations: " + refill);
        } finally {
            source.open.countDown();
            pool.close();
        }
    }

    @Test
    void decayKeepsLowAtItsBaseRatioToHigh() throws Exception {
        TestClock clock = new TestClock();
        RecordingSource source = new RecordingSource();
        ClusterPool pool = new ClusterPool(source, 16, 64, 1024, clock);
        try {
            growToCap(pool);
            // The clock moves only once the allocator has read its start, the time decay counts from.
            assertTrue(source.asked.await(10, TimeUnit.SECONDS), "the allocator never asked for a refill");
            source.open.countDown();
            // A second on the pool's clock: one decay step, high by a quarter and low with it (before the fix, low
            // decayed on its own from the cap and stayed equal to high).
            clock.advance(TimeUnit.SECONDS.toNanos(1));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (pool.high() != 768 || pool.low() == 256) { // the step writes high, then low
                assertTrue(System.nanoTime() < deadline, "no decay step: " + pool.low() + "/" + pool.high());
                Thread.sleep(1);
            }
            assertEquals(192, pool.low());
        } finally {
            source.open.countDown();
            pool.close();
        }
    }

    /**
     * Ten takes that find a 16/64/1024 pool empty while its source holds the allocator's first refill: the first
     * four double high to its cap, low following at 1:4; the other six change nothing.
     */
    private static void growToCap(ClusterPool pool) throws MetadataCorruptionException {
        for (int i = 0; i < 10; i++) {
            assertEquals(Optional.empty(), pool.take());
        }
        assertEquals(1024, pool.high());
        assertEquals(256, pool.low(), "low keeps its base ratio to high (16:64) rather than reaching it");
    }

    /** Waits (bounded) until the allocator has brought the pool to {@code size}. */
    private static void awaitSize(ClusterPool pool, int size) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (pool.size() != size) {
            assertTrue(System.nanoTime() < deadline, "the pool holds " + pool.size() + ", not " + size);
            Thread.sleep(1);
        }
    }
}
