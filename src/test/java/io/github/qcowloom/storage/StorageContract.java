package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The behaviour every {@link Storage} shares; each implementation's test extends it. */
abstract class StorageContract {
    private static final int THREADS = 64;

    private final List<Storage> opened = new ArrayList<>();

    /** A fresh, empty, writable storage. */
    protected abstract Storage createEmpty() throws IOException;

    /** A fresh read-only storage holding {@code contents}. */
    protected abstract Storage createReadOnly(byte[] contents) throws IOException;

    private Storage empty() throws IOException {
        Storage storage = createEmpty();
        opened.add(storage);
        return storage;
    }

    @AfterEach
    void closeAll() throws IOException {
        for (Storage storage : opened) {
            storage.close();
        }
    }

    static byte[] pattern(int length, long seed) {
        byte[] bytes = new byte[length];
        new Random(seed).nextBytes(bytes);
        return bytes;
    }

    static byte[] readAll(Storage storage) throws IOException {
        ByteBuffer all = ByteBuffer.allocate(Math.toIntExact(storage.size()));
        assertEquals(all.capacity(), storage.read(all, 0));
        return all.array();
    }

    @Test
    void readPastEndIsShortAndReadFullyZeroFills() throws IOException {
        Storage s = empty();
        byte[] data = pattern(100, 1);
        s.write(ByteBuffer.wrap(data), 0);

        ByteBuffer dst = ByteBuffer.allocate(200);
        assertEquals(100, s.read(dst, 0));
        assertEquals(100, dst.position());
        assertArrayEquals(data, Arrays.copyOf(dst.array(), 100));
        assertEquals(0, s.read(ByteBuffer.allocate(10), 100));
        assertEquals(0, s.read(ByteBuffer.allocate(10), 1 << 20));
        assertEquals(0, s.read(ByteBuffer.allocate(0), 0));

        ByteBuffer full = ByteBuffer.wrap(pattern(200, 2));
        s.readFully(full, 50);
        assertEquals(200, full.position());
        assertArrayEquals(Arrays.copyOfRange(data, 50, 100), Arrays.copyOf(full.array(), 50));
        assertArrayEquals(new byte[150], Arrays.copyOfRange(full.array(), 50, 200));
    }

    @Test
    void writeAdvancesBufferAndExtendsWithZeroGap() throws IOException {
        Storage s = empty();
        ByteBuffer src = ByteBuffer.wrap(pattern(300, 3));
        s.write(src, 10_000);
        assertEquals(300, src.position());
        assertEquals(10_300, s.size());
        byte[] all = readAll(s);
        assertArrayEquals(new byte[10_000], Arrays.copyOf(all, 10_000));
        assertArrayEquals(src.array(), Arrays.copyOfRange(all, 10_000, 10_300));
        s.write(ByteBuffer.allocate(0), 50_000);
        assertEquals(10_300, s.size());
    }

    @Test
    void setLengthShrinksAndExtendsWithZeroes() throws IOException {
        Storage s = empty();
        byte[] data = pattern(10_000, 4);
        s.write(ByteBuffer.wrap(data), 0);
        s.setLength(3_001);
        assertEquals(3_001, s.size());
        assertArrayEquals(Arrays.copyOf(data, 3_001), readAll(s));
        s.setLength(9_000);
        assertEquals(9_000, s.size());
        byte[] expected = Arrays.copyOf(Arrays.copyOf(data, 3_001), 9_000);
        assertArrayEquals(expected, readAll(s));
        s.setLength(0);
        assertEquals(0, s.size());
        assertEquals(0, s.read(ByteBuffer.allocate(10), 0));
    }

    @Test
    void extendToOnlyEverGrowsTheFile() throws IOException {
        Storage s = empty();
        byte[] data = pattern(10_000, 6);
        s.write(ByteBuffer.wrap(data), 0);
        s.extendTo(4_000);
        assertEquals(10_000, s.size());
        s.extendTo(16_384);
        assertEquals(16_384, s.size());
        assertArrayEquals(Arrays.copyOf(data, 16_384), readAll(s));
    }

    @Test
    void punchHoleInTheMiddleZeroesAndKeepsSize() throws IOException {
        Storage s = empty();
        byte[] data = pattern(20_000, 5);
        s.write(ByteBuffer.wrap(data), 0);
        s.punchHole(5_001, 6_000);
        Arrays.fill(data, 5_001, 11_001, (byte) 0);
        assertEquals(20_000, s.size());
        assertArrayEquals(data, readAll(s));
    }

    @Test
    void punchHoleAtTheTailZeroesAndKeepsSize() throws IOException {
        Storage s = empty();
        byte[] data = pattern(20_000, 6);
        s.write(ByteBuffer.wrap(data), 0);
        s.punchHole(15_003, 10_000);
        Arrays.fill(data, 15_003, 20_000, (byte) 0);
        assertEquals(20_000, s.size());
        assertArrayEquals(data, readAll(s));
        s.punchHole(30_000, 100);
        s.punchHole(0, 0);
        assertEquals(20_000, s.size());
        assertArrayEquals(data, readAll(s));
    }

    @Test
    void writeZeroesZeroesAndExtends() throws IOException {
        Storage s = empty();
        byte[] data = pattern(10_000, 7);
        s.write(ByteBuffer.wrap(data), 0);
        s.writeZeroes(1_000, 2_500);
        Arrays.fill(data, 1_000, 3_500, (byte) 0);
        assertArrayEquals(data, readAll(s));
        s.writeZeroes(9_000, (3 << 20) + 17);
        assertEquals(9_000 + (3 << 20) + 17, s.size());
        byte[] all = readAll(s);
        assertArrayEquals(Arrays.copyOf(data, 9_000), Arrays.copyOf(all, 9_000));
        assertTrue(allZero(all, 9_000, all.length));
        s.writeZeroes(50L << 20, 0);
        assertEquals(all.length, s.size());
    }

    @Test
    void readOnlyRefusesWrites() throws IOException {
        byte[] data = pattern(5_000, 8);
        Storage s = createReadOnly(data);
        opened.add(s);
        assertTrue(s.readOnly());
        assertEquals("storage is read-only", assertThrows(IOException.class,
                () -> s.write(ByteBuffer.allocate(1), 0)).getMessage().replaceFirst(":.*", ""));
        assertThrows(IOException.class, () -> s.setLength(10));
        assertThrows(IOException.class, () -> s.punchHole(0, 100));
        assertThrows(IOException.class, () -> s.writeZeroes(0, 100));
        s.flush();
        assertEquals(5_000, s.size());
        assertArrayEquals(data, readAll(s));
    }

    @Test
    void writableByDefault() throws IOException {
        assertTrue(!empty().readOnly());
    }

    @Test
    void largeUnalignedWriteAndReadThroughDirectAndHeapBuffers() throws IOException {
        Storage s = empty();
        byte[] data = pattern((3 << 20) + 333, 9);
        ByteBuffer src = ByteBuffer.allocateDirect(data.length + 7).position(7);
        src.put(data).position(7);
        s.write(src, 777);
        assertEquals(777 + data.length, s.size());
        ByteBuffer heap = ByteBuffer.allocate(data.length);
        assertEquals(data.length, s.read(heap, 777));
        assertArrayEquals(data, heap.array());
        ByteBuffer direct = ByteBuffer.allocateDirect(data.length + 3).position(3);
        assertEquals(data.length, s.read(direct, 777));
        byte[] back = new byte[data.length];
        direct.position(3).get(back);
        assertArrayEquals(data, back);
    }

    @Test
    void alignedDirectBuffersRoundTrip() throws IOException {
        Storage s = empty();
        int block = 4096;
        byte[] data = pattern(4 * block, 10);
        ByteBuffer src = ByteBuffer.allocateDirect(5 * block).alignedSlice(block).slice(0, 4 * block);
        src.put(data).flip();
        s.write(src, 2L * block);
        s.flush();
        ByteBuffer dst = ByteBuffer.allocateDirect(6 * block).alignedSlice(block).slice(0, 4 * block);
        assertEquals(4 * block, s.read(dst, 2L * block));
        byte[] back = new byte[data.length];
        dst.flip().get(back);
        assertArrayEquals(data, back);
        // An aligned read reaching past the end stops at the end.
        ByteBuffer tail = ByteBuffer.allocateDirect(3 * block).alignedSlice(block).slice(0, 2 * block);
        assertEquals(block, s.read(tail, 5L * block));
        assertEquals(block, tail.position());
    }

    @Test
    void concurrentWritersOfDisjointSectorsLoseNothing() throws Exception {
        Storage s = empty();
        int rounds = 8;
        runConcurrently(THREADS, rounds, (thread, round) -> {
            // 8 sectors per 4 KiB block: 8 writers share every block.
            long at = round * (long) THREADS * 512 + thread * 512L;
            s.write(ByteBuffer.wrap(pattern(512, seed(thread, round))), at);
        });
        byte[] all = readAll(s);
        for (int round = 0; round < rounds; round++) {
            for (int thread = 0; thread < THREADS; thread++) {
                int at = round * THREADS * 512 + thread * 512;
                assertArrayEquals(pattern(512, seed(thread, round)), Arrays.copyOfRange(all, at, at + 512),
                        "sector of thread " + thread + " in round " + round);
            }
        }
    }

    @Test
    void concurrentUnalignedWritersInsideOneBlockLoseNothing() throws Exception {
        Storage s = empty();
        int rounds = 8;
        int stride = 61;
        s.setLength(rounds * 4096L); // inside the file, so no write extends it and none runs exclusively
        runConcurrently(THREADS, rounds, (thread, round) -> {
            // Odd-sized, odd-placed pieces, all inside the round's 4 KiB block.
            long at = round * 4096L + 7 + (long) thread * stride;
            s.write(ByteBuffer.wrap(pattern(stride, seed(thread, round))), at);
        });
        byte[] all = readAll(s);
        for (int round = 0; round < rounds; round++) {
            for (int thread = 0; thread < THREADS; thread++) {
                int at = round * 4096 + 7 + thread * stride;
                assertArrayEquals(pattern(stride, seed(thread, round)), Arrays.copyOfRange(all, at, at + stride),
                        "piece of thread " + thread + " in round " + round);
            }
        }
    }

    @Test
    void concurrentExtendingWritersKeepEveryByteAndTheExactSize() throws Exception {
        Storage s = empty();
        int piece = 997;
        // Round r writes backwards in offset order across threads, so the file grows in a scattered way.
        runConcurrently(THREADS, 4, (thread, round) -> {
            long at = 13 + (long) (round * THREADS + (THREADS - 1 - thread)) * (piece + 3);
            s.write(ByteBuffer.wrap(pattern(piece, seed(thread, round))), at);
        });
        byte[] all = readAll(s);
        assertEquals(13 + (4L * THREADS - 1) * (piece + 3) + piece, all.length);
        for (int round = 0; round < 4; round++) {
            for (int thread = 0; thread < THREADS; thread++) {
                int at = 13 + (round * THREADS + (THREADS - 1 - thread)) * (piece + 3);
                assertArrayEquals(pattern(piece, seed(thread, round)), Arrays.copyOfRange(all, at, at + piece),
                        "piece of thread " + thread + " in round " + round);
                if (at + piece < all.length) {
                    assertArrayEquals(new byte[3], Arrays.copyOfRange(all, at + piece, at + piece + 3),
                            "gap after thread " + thread + " in round " + round);
                }
            }
        }
    }

    @Test
    void concurrentWritersOfSharedSectorsLeaveOneWholeWrite() throws Exception {
        Storage s = empty();
        s.setLength(4096);
        runConcurrently(THREADS, 4, (thread, round) -> {
            byte[] sector = new byte[512];
            Arrays.fill(sector, (byte) (thread + 1));
            s.write(ByteBuffer.wrap(sector), (thread % 8) * 512L);
        });
        byte[] all = readAll(s);
        assertEquals(4096, all.length);
        for (int sector = 0; sector < 8; sector++) {
            byte value = all[sector * 512];
            assertEquals(sector, (value - 1) % 8, "sector " + sector + " holds a write meant for another");
            for (int i = 0; i < 512; i++) {
                assertEquals(value, all[sector * 512 + i], "sector " + sector + " is torn");
            }
        }
    }

    private static long seed(int thread, int round) {
        return 1000L * round + thread;
    }

    private interface Work {
        void run(int thread, int round) throws IOException;
    }

    /** Runs {@code work} on {@code threads} virtual threads per round, released together by a latch. */
    private static void runConcurrently(int threads, int rounds, Work work) throws Exception {
        try (ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int round = 0; round < rounds; round++) {
                CountDownLatch start = new CountDownLatch(1);
                List<Future<?>> futures = new ArrayList<>();
                for (int thread = 0; thread < threads; thread++) {
                    int t = thread;
                    int r = round;
                    futures.add(executor.submit(() -> {
                        start.await();
                        work.run(t, r);
                        return null;
                    }));
                }
                start.countDown();
                for (Future<?> future : futures) {
                    future.get();
                }
            }
        }
    }

    private static boolean allZero(byte[] bytes, int from, int to) {
        for (int i = from; i < to; i++) {
            if (bytes[i] != 0) {
                return false;
            }
        }
        return true;
    }
}
