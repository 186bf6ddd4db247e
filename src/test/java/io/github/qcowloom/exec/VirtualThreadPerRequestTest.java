package io.github.qcowloom.exec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class VirtualThreadPerRequestTest {
    @Test
    void runsEachTaskOnItsOwnVirtualThreadAndCloseWaitsForAll() {
        AtomicInteger ran = new AtomicInteger();
        AtomicInteger virtual = new AtomicInteger();
        VirtualThreadPerRequest executor = new VirtualThreadPerRequest(Thread.ofVirtual().factory());
        try (executor) {
            for (int i = 0; i < 10_000; i++) {
                executor.execute(() -> {
                    if (Thread.currentThread().isVirtual()) {
                        virtual.incrementAndGet();
                    }
                    Thread.yield();
                    ran.incrementAndGet();
                });
            }
        }
        assertEquals(10_000, ran.get());
        assertEquals(10_000, virtual.get());
        assertTrue(executor.isTerminated());
    }

    /** A task whose thread does not start is not left counted, or shutdown would wait for it forever. */
    @Test
    void aTaskWhoseThreadDoesNotStartIsNotCounted() throws Exception {
        Thread started = Thread.ofVirtual().start(() -> { });
        VirtualThreadPerRequest executor = new VirtualThreadPerRequest(task -> started); // start() throws
        assertThrows(IllegalThreadStateException.class, () -> executor.execute(() -> { }));
        executor.shutdown();
        assertTrue(executor.awaitTermination(10, TimeUnit.SECONDS));
    }

    @Test
    void awaitTerminationTimesOutWhileATaskRunsAndRefusesNewTasks() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        VirtualThreadPerRequest executor = new VirtualThreadPerRequest(Thread.ofVirtual().factory());
        executor.execute(() -> {
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        executor.shutdown();
        assertThrows(RejectedExecutionException.class, () -> executor.execute(() -> { }));
        assertFalse(executor.awaitTermination(50, TimeUnit.MILLISECONDS));
        assertFalse(executor.isTerminated());
        release.countDown();
        assertTrue(executor.awaitTermination(10, TimeUnit.SECONDS));
    }
}
