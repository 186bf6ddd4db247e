package io.github.qcowloom.os;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.testing.OnThread;
import io.github.qcowloom.testing.PageCacheDrops;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reads and writes of a file opened without O_DIRECT from an event loop's thread: what the page cache holds is
 * read at once, the rest through the request path, and the two halves of a read partly cached make one whole read;
 * writes land whole whichever way they go ({@link BufferedWrites} decides, tested on its own).
 */
@Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class UringLoopPageCacheTest {
    /** A page: the page cache holds whole pages. */
    private static final int BLOCK = BufferedWrites.PAGE_SIZE;
    private static final int BLOCKS = 16;

    @TempDir
    Path dir;

    @Test
    void aReadPartlyCachedTakesTheCachedStartAtOnceAndTheRestThroughTheRequestPath() throws Exception {
        PageCacheDrops.assumeDroppable(dir);
        Path file = dir.resolve("f");
        byte[] expected = random(BLOCKS * BLOCK, 1);
        Files.write(file, expected);
        FileCache.drop(file);
        byte[] head = random(4 * BLOCK, 2); // blocks 0-3 rewritten: in the cache, the rest not
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(head), 0);
        }
        System.arraycopy(head, 0, expected, 0, head.length);
        ThreadFactory loop = UringLoops.threadFactory(1, "test-page-cache-read");
        try (NativeFile f = NativeFile.open(file, false, false)) {
            long calls = loopCalls();
            assertArrayEquals(Arrays.copyOfRange(expected, 0, 8 * BLOCK), read(loop, f, 0, 8 * BLOCK));
            assertEquals(calls + 2, loopCalls(), "the cached half from the cache, then the rest: two calls");
            calls = loopCalls();
            long ring = UringLoop.REQUESTS.sum();
            assertArrayEquals(Arrays.copyOfRange(expected, 0, 8 * BLOCK), read(loop, f, 0, 8 * BLOCK));
            assertEquals(calls + 1, loopCalls(), "all cached now: one call");
            assertEquals(ring, UringLoop.REQUESTS.sum(), "made on the loop's thread");

            FileCache.drop(file); // nothing cached: through the request path only
            assertArrayEquals(Arrays.copyOfRange(expected, 8 * BLOCK, 12 * BLOCK), read(loop, f, 8 * BLOCK,
                    4 * BLOCK));
            byte[] end = read(loop, f, (BLOCKS - 2) * BLOCK, 4 * BLOCK); // cached by readahead or not
            assertArrayEquals(Arrays.copyOfRange(expected, (BLOCKS - 2) * BLOCK, BLOCKS * BLOCK), end,
                    "a read past the end is short, not longer");
            assertEquals(0, read(loop, f, BLOCKS * BLOCK, BLOCK).length, "at the end: nothing");
        }
    }

    @Test
    void bufferedWritesLandWholeWhetherMadeOnTheLoopOrThroughTheRing() throws Exception {
        Path file = dir.resolve("w");
        byte[] expected = new byte[(BufferedWrites.MAX_ON_LOOP / BLOCK + 4) * BLOCK];
        Files.write(file, expected);
        ThreadFactory loop = UringLoops.threadFactory(1, "test-page-cache-write");
        try (NativeFile f = NativeFile.open(file, true, false)) {
            write(loop, f, expected, random(BLOCK, 3), 0); // aligned and short: on the loop's thread
            write(loop, f, expected, random(512, 4), BLOCK + 100); // unaligned: through the request path
            write(loop, f, expected, random(BufferedWrites.MAX_ON_LOOP + BLOCK, 5), 2 * BLOCK); // long: likewise
        }
        assertArrayEquals(expected, Files.readAllBytes(file));
    }

    private static byte[] read(ThreadFactory loop, NativeFile f, long offset, int length) throws Exception {
        ByteBuffer dst = ByteBuffer.allocateDirect(length);
        int n = OnThread.start(loop, () -> UringQueue.shared().readBuffered(f.fd(), address(dst), length, offset))
                .get(30, TimeUnit.SECONDS);
        byte[] out = new byte[n];
        dst.get(0, out);
        return out;
    }

    private static void write(ThreadFactory loop, NativeFile f, byte[] expected, byte[] data, int offset)
            throws Exception {
        ByteBuffer src = ByteBuffer.allocateDirect(data.length).put(data).flip();
        int n = OnThread.start(loop, () -> UringQueue.shared().writeBuffered(f.fd(), address(src), data.length,
                offset)).get(30, TimeUnit.SECONDS);
        assertEquals(data.length, n);
        System.arraycopy(data, 0, expected, offset, data.length);
    }

    private static byte[] random(int length, long seed) {
        byte[] b = new byte[length];
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = 0; i < length; i++) {
            b[i] = (byte) rnd.nextInt();
        }
        return b;
    }

    /** Requests the loops made, through their rings or on their threads. */
    private static long loopCalls() {
        return UringLoop.REQUESTS.sum() + UringLoop.DIRECT_REQUESTS.sum();
    }

    private static long address(ByteBuffer direct) {
        return MemorySegment.ofBuffer(direct).address();
    }
}
