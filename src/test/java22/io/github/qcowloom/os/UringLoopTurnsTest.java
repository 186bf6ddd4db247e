package io.github.qcowloom.os;

import static java.util.concurrent.TimeUnit.SECONDS;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.testing.OnThread;
import io.github.qcowloom.testing.PageCacheDrops;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A thread whose calls never park (reads the page cache answers, made on the loop's thread) yields its loop's turn:
 * the loop's other threads run, and their requests go through the ring and complete, while it goes on; those whose
 * requests completed run before its next turn.
 */
@Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class UringLoopTurnsTest {
    private static final int BLOCK = BufferedWrites.PAGE_SIZE;

    @TempDir
    Path dir;

    @Test
    void aThreadOfCachedReadsLetsTheLoopsOtherThreadsRunAndTheirRequestsComplete() throws Exception {
        PageCacheDrops.assumeDroppable(dir);
        Path cached = dir.resolve("cached");
        Files.write(cached, new byte[BLOCK]); // just written: in the page cache
        Path other = dir.resolve("other");
        byte[] expected = new byte[BLOCK];
        expected[7] = 42;
        Files.write(other, expected);
        FileCache.drop(other); // so its read goes through the ring
        ThreadFactory loop = UringLoops.threadFactory(1, "test-turns");
        AtomicBoolean stop = new AtomicBoolean();
        try (NativeFile hot = NativeFile.open(cached, false, false);
                NativeFile cold = NativeFile.open(other, false, false)) {
            AtomicLong reads = new AtomicLong();
            ByteBuffer buf = ByteBuffer.allocateDirect(BLOCK);
            long ringBefore = UringLoop.REQUESTS.sum();
            CompletableFuture<Long> hog = OnThread.start(loop, () -> {
                long deadline = System.nanoTime() + SECONDS.toNanos(60);
                while (!stop.get() && System.nanoTime() < deadline) {
                    UringQueue.shared().readBuffered(hot.fd(), address(buf), BLOCK, 0);
                    reads.incrementAndGet();
                }
                return reads.get();
            });
            while (reads.get() < 1_000) { // the hog has the loop
                Thread.onSpinWait();
            }
            // Reads through the ring would park the hog, and let the other thread run without turns.
            assumeTrue(UringLoop.REQUESTS.sum() - ringBefore < 100, "the file system refuses RWF_NOWAIT");
            ByteBuffer dst = ByteBuffer.allocateDirect(BLOCK);
            long[] hogReadsMeanwhile = new long[1];
            int n = OnThread.start(loop, () -> {
                long before = reads.get();
                int got = UringQueue.shared().readBuffered(cold.fd(), address(dst), BLOCK, 0);
                hogReadsMeanwhile[0] = reads.get() - before;
                return got;
            }).get(20, SECONDS); // before turns: only once the hog's 60 s were over
            assertFalse(hog.isDone(), "the other thread ran while the cached reads went on");
            assertEquals(BLOCK, n);
            byte[] got = new byte[BLOCK];
            dst.get(0, got);
            assertArrayEquals(expected, got);
            // Its read was submitted and taken at the hog's next yields, a few turns of 500 µs; at the end of a round
            // of 256 turns it would be some 100 000 reads.
            assertTrue(hogReadsMeanwhile[0] < 20_000, hogReadsMeanwhile[0] + " cached reads while the other waited");
        } finally {
            stop.set(true); // the loop is the process's: the hog must not keep it
        }
    }

    /**
     * The threads whose requests completed during a thread's turn run before its next one: the loop takes their
     * completions when it yields, and queues it behind them. The other thread here waits for a socket's byte through
     * the ring; the thread holding the loop sends that byte itself, so the yield after the send is the one whose
     * reap takes it, and the other thread must run before the next.
     */
    @Test
    void threadsWhoseRequestsCompletedRunBeforeTheYieldingThreadsNextTurn() throws Exception {
        Path path = dir.resolve("turn.sock");
        int listener = UnixSockets.listen(path, 1);
        int client = UnixSockets.connect(path);
        int server = UnixSockets.accept(listener);
        ThreadFactory loop = UringLoops.threadFactory(1, "test-turn-order");
        AtomicBoolean stop = new AtomicBoolean();
        try {
            long receivesBefore = LoopSockets.receives();
            CompletableFuture<Long> other = OnThread.start(loop, () -> {
                int n = LoopSockets.receive(server, ByteBuffer.allocateDirect(16));
                assertEquals(1, n);
                return UringLoop.current().yieldCount;
            });
            long deadline = System.nanoTime() + SECONDS.toNanos(60);
            while (LoopSockets.receives() == receivesBefore && !other.isDone() && System.nanoTime() < deadline) {
                Thread.onSpinWait(); // until it waits in the ring
            }
            CompletableFuture<Long> hog = OnThread.start(loop, () -> {
                UringLoop me = UringLoop.current();
                // Calls on the loop's thread, as cached reads are, without a file system that may refuse them.
                long first = me.yieldCount;
                // The other thread's receive is in the kernel after the first yield.
                while (me.yieldCount < first + 2 && !stop.get() && System.nanoTime() < deadline) {
                    me.yieldIfTurnSpent(System.nanoTime());
                }
                long atSend = me.yieldCount;
                UnixSockets.send(client, Arena.global().allocate(1), 1);
                while (!stop.get() && System.nanoTime() < deadline) {
                    me.yieldIfTurnSpent(System.nanoTime());
                }
                return atSend;
            });
            long atResume = other.get(20, SECONDS);
            stop.set(true);
            long atSend = hog.get(20, SECONDS);
            // Behind the hog, it would have run only after the hog's next turn: atSend + 2.
            assertEquals(atSend + 1, atResume, "turns the hog yielded before the other thread ran");
        } finally {
            stop.set(true); // the loop is the process's: the hog must not keep it
            UnixSockets.close(client);
            UnixSockets.close(server);
            UnixSockets.close(listener);
        }
    }

    private static long address(ByteBuffer direct) {
        return MemorySegment.ofBuffer(direct).address();
    }
}
