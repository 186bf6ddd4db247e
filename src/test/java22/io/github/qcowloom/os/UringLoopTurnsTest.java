package io.github.qcowloom.os;

import static java.util.concurrent.TimeUnit.SECONDS;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.github.qcowloom.testing.OnThread;
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
 * the loop's other threads run, and their requests go through the ring and complete, while it goes on.
 */
@Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class UringLoopTurnsTest {
    private static final int BLOCK = BufferedWrites.PAGE_SIZE;

    @TempDir
    Path dir;

    @Test
    void aThreadOfCachedReadsLetsTheLoopsOtherThreadsRunAndTheirRequestsComplete() throws Exception {
        Path cached = dir.resolve("cached");
        Files.write(cached, new byte[BLOCK]); // just written: in the page cache
        Path other = dir.resolve("other");
        byte[] expected = new byte[BLOCK];
        expected[7] = 42;
        Files.write(other, expected);
        FileCache.drop(other); // read through the ring, where the cache can be dropped (not on tmpfs)
        ThreadFactory loop = UringLoops.threadFactory(1, "test-turns");
        try (NativeFile hot = NativeFile.open(cached, false, false);
                NativeFile cold = NativeFile.open(other, false, false)) {
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong reads = new AtomicLong();
            ByteBuffer buf = ByteBuffer.allocateDirect(BLOCK);
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
            ByteBuffer dst = ByteBuffer.allocateDirect(BLOCK);
            int n = OnThread.start(loop, () -> UringQueue.shared().readBuffered(cold.fd(), address(dst), BLOCK, 0))
                    .get(20, SECONDS); // before turns: only once the hog's 60 s were over
            assertFalse(hog.isDone(), "the other thread ran while the cached reads went on");
            assertEquals(BLOCK, n);
            byte[] got = new byte[BLOCK];
            dst.get(0, got);
            assertArrayEquals(expected, got);
            stop.set(true);
            hog.get(30, SECONDS);
        }
    }

    private static long address(ByteBuffer direct) {
        return MemorySegment.ofBuffer(direct).address();
    }
}
