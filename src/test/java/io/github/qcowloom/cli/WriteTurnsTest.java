package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.simulation.SimScheduler;
import io.github.qcowloom.simulation.Simulation;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * convert's in-order writes: they run in turn order, each once and before its caller returns, the thread that is
 * writing makes the queued writes after its own, and one failure stops all the others.
 */
class WriteTurnsTest {
    @Test
    void writesRunInTurnOrder() throws Exception {
        WriteTurns turns = new WriteTurns();
        List<Long> order = Collections.synchronizedList(new ArrayList<>());
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (long turn = 9; turn >= 0; turn--) {
                long t = turn;
                done.add(pool.submit(() -> {
                    turns.write(t, () -> order.add(t));
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        }
        assertEquals(List.of(0L, 1L, 2L, 3L, 4L, 5L, 6L, 7L, 8L, 9L), order);
    }

    @Test
    void theWriterOfATurnMakesTheWritesQueuedAfterIt() throws Exception {
        WriteTurns turns = new WriteTurns();
        AtomicReference<Thread> ranTurnOne = new AtomicReference<>();
        Thread second = Thread.ofVirtual().start(() -> {
            try {
                turns.write(1, () -> ranTurnOne.set(Thread.currentThread()));
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        // Turn 0's write starts once turn 1's is queued (its worker is then waiting, not writing).
        while (second.getState() != Thread.State.WAITING) {
            Thread.onSpinWait();
        }
        turns.write(0, () -> { });
        second.join();
        assertSame(Thread.currentThread(), ranTurnOne.get());
    }

    @Test
    void aFailureReachesEveryWaiter() throws Exception {
        WriteTurns turns = new WriteTurns();
        IOException cause = new IOException("disk full");
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            AtomicBoolean ran = new AtomicBoolean();
            Future<?> waiting = pool.submit(() -> {
                turns.write(3, () -> ran.set(true));
                return null;
            });
            turns.abort(cause);
            ExecutionException e = assertThrows(ExecutionException.class, waiting::get);
            assertSame(cause, e.getCause());
            assertSame(cause, assertThrows(IOException.class, () -> turns.write(0, () -> ran.set(true))));
            assertFalse(ran.get(), "no write runs after a failure");
        }
    }

    @Test
    void underExploredInterleavingsWritesRunOnceInOrderAndNoCallerLeavesWhileItsWriteRuns() {
        assumeTrue(SimScheduler.available(), "needs --add-opens java.base/java.lang=ALL-UNNAMED");
        int workers = 4;
        int pieces = 12;
        Simulation.Exploration x = Simulation.explore(1, 2000, 1_000_000, sim -> {
            WriteTurns turns = new WriteTurns();
            // A third of the schedules fail one piece: in its write, or in its read (the worker aborts).
            int failing = sim.nextInt(3) == 0 ? sim.nextInt(pieces) : -1;
            boolean inRead = sim.nextInt(2) == 0;
            IOException failure = new IOException("piece " + failing + " failed");
            List<Integer> order = Collections.synchronizedList(new ArrayList<>());
            Set<Integer> running = ConcurrentHashMap.newKeySet();
            Set<Integer> left = ConcurrentHashMap.newKeySet(); // callers that returned or threw
            int[] nextPiece = {0};
            List<Thread> threads = new ArrayList<>();
            for (int w = 0; w < workers; w++) {
                threads.add(sim.start("worker-" + w, () -> {
                    while (true) {
                        int piece;
                        synchronized (nextPiece) { // pieces are taken in ascending order, as ChunkCopy's planner
                            piece = nextPiece[0]++;
                        }
                        if (piece >= pieces) {
                            return;
                        }
                        sim.yieldPoint(); // the read
                        if (piece == failing && inRead) {
                            turns.abort(failure);
                            return;
                        }
                        try {
                            turns.write(piece, () -> {
                                assertFalse(left.contains(piece), "the write of a caller that left ran");
                                running.add(piece);
                                sim.yieldPoint();
                                if (piece == failing) {
                                    running.remove(piece);
                                    throw failure;
                                }
                                order.add(piece);
                                sim.yieldPoint();
                                running.remove(piece);
                            });
                            assertTrue(order.contains(piece), "write " + piece + " returned before it ran");
                        } catch (IOException e) {
                            assertSame(failure, e);
                            turns.abort(e); // as ChunkCopy's workers do
                            return;
                        } finally {
                            assertFalse(running.contains(piece), "the caller of " + piece + " left while it ran");
                            left.add(piece);
                        }
                    }
                }));
            }
            for (Thread t : threads) {
                t.join();
            }
            int written = order.size();
            assertTrue(failing < 0 ? written == pieces : written <= failing, written + " written, " + failing
                    + " failed");
            for (int i = 0; i < written; i++) {
                assertEquals(i, order.get(i), "in turn order");
            }
        });
        assertNull(x.failed(), () -> "seed " + x.failed().seed() + ": " + x.failed().failure());
        assertTrue(x.distinct() > 1500, x.distinct() + " distinct interleavings of " + x.runs());
    }
}
