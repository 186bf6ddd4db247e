package io.github.qcowloom.alloc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.MetadataCorruptionException;
import java.io.IOException;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The pool's allocator thread meets an Error (an OutOfMemoryError can land in any thread, e.g. one a busy NBD
 * client provoked): it records it for the takers instead of dying unnoticed, and takes stop asking a dead thread
 * for refills.
 */
class ClusterPoolFailureTest {
    /** A source whose allocations fail with {@code error}, counting down {@code reached} first. */
    private static ClusterSource failing(Error error, CountDownLatch reached) {
        return new ClusterSource() {
            @Override
            public List<NewCluster> allocate(int n) {
                reached.countDown();
                throw error;
            }

            @Override
            public void release(List<NewCluster> clusters) {
            }

            @Override
            public void idle() {
            }
        };
    }

    @Test
    void anErrorInTheAllocatorIsRecordedAndTakesFallBackWithoutGrowingTheThresholds() throws Exception {
        OutOfMemoryError oom = new OutOfMemoryError("Java heap space (simulated)");
        oom.setStackTrace(new StackTraceElement[0]);
        CountDownLatch reached = new CountDownLatch(1);
        ClusterPool pool = new ClusterPool(failing(oom, reached), 4, 8, 1024);
        // The first take finds the pool empty and asks for a refill, which fails.
        assertEquals(Optional.empty(), pool.take());
        assertTrue(reached.await(10, TimeUnit.SECONDS), "the allocator never tried to refill");
        // close() joins the allocator: after it, whatever the allocator recorded is visible.
        pool.close();
        assertInstanceOf(OutOfMemoryError.class, pool.failure(), "the allocator's Error was not recorded");
        int low = pool.low();
        int high = pool.high();
        for (int i = 0; i < 5; i++) {
            assertEquals(Optional.empty(), pool.take());
        }
        assertEquals(low, pool.low(), "takes kept doubling the thresholds for an allocator that is gone");
        assertEquals(high, pool.high());
    }

    @Test
    void anIoErrorIsRecordedToo() throws Exception {
        CountDownLatch reached = new CountDownLatch(1);
        IOException io = new IOException("No space left on device");
        ClusterPool pool = new ClusterPool(new ClusterSource() {
            @Override
            public List<NewCluster> allocate(int n) throws IOException {
                reached.countDown();
                throw io;
            }

            @Override
            public void release(List<NewCluster> clusters) {
            }

            @Override
            public void idle() {
            }
        }, 4, 8, 1024);
        assertEquals(Optional.empty(), pool.take());
        assertTrue(reached.await(10, TimeUnit.SECONDS));
        pool.close();
        assertEquals(io, pool.failure());
    }

    @Test
    void corruptMetadataMetByTheAllocatorReachesTheTakesAndTheImage() throws Exception {
        CountDownLatch reached = new CountDownLatch(1);
        MetadataCorruptionException corrupt = new MetadataCorruptionException(
                "Refblock offset 0x8000000000020000 invalid (reftable index: 0x0)");
        java.util.List<MetadataCorruptionException> signalled = new java.util.concurrent.CopyOnWriteArrayList<>();
        CountDownLatch told = new CountDownLatch(1);
        ClusterPool pool = new ClusterPool(new ClusterSource() {
            @Override
            public List<NewCluster> allocate(int n) throws IOException {
                reached.countDown();
                throw corrupt;
            }

            @Override
            public void release(List<NewCluster> clusters) {
            }

            @Override
            public void idle() {
            }

            @Override
            public void corrupted(MetadataCorruptionException e) {
                signalled.add(e);
                told.countDown();
            }
        }, 4, 8, 1024);
        assertEquals(Optional.empty(), pool.take());
        assertTrue(reached.await(10, TimeUnit.SECONDS));
        assertTrue(told.await(10, TimeUnit.SECONDS), "the image was never told of the corruption");
        // The image was told (it marks itself corrupt), and every later take fails with the typed exception.
        assertEquals(java.util.List.of(corrupt), signalled);
        MetadataCorruptionException e = assertThrows(MetadataCorruptionException.class, pool::take);
        assertEquals(corrupt.getMessage(), e.getMessage());
        pool.close();
    }
}
