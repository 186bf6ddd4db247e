package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/** A request's parts run side by side, at most {@link PartTasks#MAX_WORKERS} at once, and all end before it does. */
class PartTasksTest {
    @Test
    void aLonePartRunsOnTheRequestsThread() throws Exception {
        PartTasks tasks = new PartTasks(true);
        AtomicReference<Thread> ranOn = new AtomicReference<>();
        tasks.add(() -> ranOn.set(Thread.currentThread()));
        tasks.runAll();
        assertSame(Thread.currentThread(), ranOn.get());
        new PartTasks(true).runAll(); // none: nothing to do
    }

    @Test
    void withoutADeviceToWaitForThePartsRunInOrderOnTheRequestsThread() throws Exception {
        PartTasks tasks = new PartTasks(false);
        StringBuilder order = new StringBuilder();
        Thread request = Thread.currentThread();
        for (int i = 0; i < 20; i++) {
            int part = i;
            tasks.add(() -> {
                assertSame(request, Thread.currentThread());
                order.append(part).append(' ');
            });
        }
        tasks.runAll();
        assertEquals("0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 ", order.toString());
    }

    @Test
    void partsRunSideBySideNoMoreThanTheWorkersAtOnce() throws Exception {
        int workers = PartTasks.MAX_WORKERS;
        // Two rounds of a barrier as wide as the workers: serial parts would time out at the first.
        CyclicBarrier together = new CyclicBarrier(workers);
        AtomicInteger running = new AtomicInteger();
        AtomicInteger most = new AtomicInteger();
        AtomicInteger ran = new AtomicInteger();
        PartTasks tasks = new PartTasks(true);
        for (int i = 0; i < 2 * workers; i++) {
            tasks.add(() -> {
                most.accumulateAndGet(running.incrementAndGet(), Math::max);
                try {
                    together.await(10, TimeUnit.SECONDS);
                } catch (Exception e) {
                    throw new IOException("the parts did not run side by side", e);
                } finally {
                    running.decrementAndGet();
                }
                ran.incrementAndGet();
            });
        }
        tasks.runAll();
        assertEquals(2 * workers, ran.get());
        assertEquals(workers, most.get());
    }

    @Test
    void aFailureIsThrownOnceEveryPartStartedHasEnded() {
        AtomicInteger running = new AtomicInteger();
        PartTasks tasks = new PartTasks(true);
        for (int i = 0; i < 40; i++) {
            int part = i;
            tasks.add(() -> {
                running.incrementAndGet();
                try {
                    if (part == 3) {
                        throw new IOException("part 3 failed");
                    }
                    Thread.sleep(5);
                } catch (InterruptedException e) {
                    throw new IOException(e);
                } finally {
                    running.decrementAndGet();
                }
            });
        }
        IOException e = assertThrows(IOException.class, tasks::runAll);
        assertEquals("part 3 failed", e.getMessage());
        assertEquals(0, running.get(), "a part still ran when the request failed");
    }

    @Test
    void anInterruptedRequestStillWaitsForItsParts() throws Exception {
        AtomicInteger ended = new AtomicInteger();
        AtomicReference<Throwable> failed = new AtomicReference<>();
        AtomicReference<Boolean> stillInterrupted = new AtomicReference<>();
        CyclicBarrier started = new CyclicBarrier(2);
        Thread request = Thread.ofVirtual().start(() -> {
            PartTasks tasks = new PartTasks(true);
            for (int i = 0; i < 4; i++) {
                int part = i;
                tasks.add(() -> {
                    if (part == 1) {
                        try {
                            started.await(30, TimeUnit.SECONDS); // the test interrupts the request now
                        } catch (Exception e) {
                            throw new IOException(e);
                        }
                    }
                    long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(50);
                    while (System.nanoTime() < until) {
                        Thread.onSpinWait(); // not interruptible: the request must wait for it
                    }
                    ended.incrementAndGet();
                });
            }
            try {
                tasks.runAll();
            } catch (Throwable e) {
                failed.set(e);
            }
            stillInterrupted.set(Thread.currentThread().isInterrupted());
        });
        started.await(30, TimeUnit.SECONDS);
        request.interrupt();
        request.join();
        assertEquals(null, failed.get());
        assertEquals(4, ended.get(), "the request returned before its parts ended");
        assertTrue(stillInterrupted.get(), "the interrupt was lost");
    }
}
