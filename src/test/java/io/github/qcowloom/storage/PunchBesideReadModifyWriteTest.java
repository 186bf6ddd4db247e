package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.api.StorageBackend;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * With O_DIRECT a write of part of a block is a read-modify-write of the whole block. A hole punched between its
 * read and its write would be written over with the block's old bytes, which neither request left there: so a
 * punch takes the locks of the blocks it frees, as a write of them does.
 */
class PunchBesideReadModifyWriteTest {
    private static final long WAIT_MS = 300;

    @TempDir
    Path dir;

    /** The file's I/O, seen by the test: the punch, once begun, waits for the write's read of its block. */
    private static final class Seen extends ForwardingFileIo {
        final CountDownLatch punchBegun = new CountDownLatch(1);
        final CountDownLatch blockRead = new CountDownLatch(1);
        final CountDownLatch punched = new CountDownLatch(1);

        Seen(FileIo inner) {
            super(inner);
        }

        @Override
        public boolean punchHole(long position, long length) throws IOException {
            punchBegun.countDown();
            await(blockRead); // the write reads its block now, unless the punch holds the block's lock
            return inner.punchHole(position, length); // FileChannel cannot: the storage's own descriptor punches
        }

        @Override
        public int read(ByteBuffer dst, long position) throws IOException {
            int n = inner.read(dst, position);
            if (position == 4096 && blockRead.getCount() > 0) { // the write's read of its block
                blockRead.countDown();
                await(punched); // the hole is punched meanwhile, unless the write holds the block's lock
            }
            return n;
        }

        private static void await(CountDownLatch latch) {
            try {
                latch.await(WAIT_MS, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** A punch of 8 KiB, and of one 512-byte block where that is the alignment (its lock rounds out to 4 KiB). */
    @ParameterizedTest
    @ValueSource(ints = {8192, 512})
    void aPartialWriteOfABlockNeverWritesBackBytesAPunchFreed(int punched) throws Exception {
        Path file = dir.resolve("f");
        byte[] old = new byte[65536];
        Arrays.fill(old, (byte) 'P');
        Files.write(file, old);
        Seen[] io = new Seen[1];
        ExecutorService threads = Executors.newFixedThreadPool(2);
        try (FileStorage s = FileStorage.openWrapped(file, true, inner -> io[0] = new Seen(inner))) {
            // Where nothing can punch, the zeroes go through the write path and its block locks anyway.
            assumeTrue(s.backend() == StorageBackend.IO_URING, "io_uring runs here");
            CompletableFuture<Void> punch = CompletableFuture.runAsync(() -> {
                try {
                    s.punchHole(4096, punched);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
                io[0].punched.countDown();
            }, threads);
            assertTrue(io[0].punchBegun.await(10, TimeUnit.SECONDS));
            byte[] w = new byte[100]; // part of the block at 4096, whatever the alignment
            Arrays.fill(w, (byte) 'W');
            CompletableFuture<Void> write = CompletableFuture.runAsync(() -> {
                try {
                    s.write(ByteBuffer.wrap(w), 4096);
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            }, threads);
            punch.get(10, TimeUnit.SECONDS);
            write.get(10, TimeUnit.SECONDS);
            ByteBuffer got = ByteBuffer.allocate(8192);
            s.read(got, 4096);
            for (int i = 0; i < 8192; i++) {
                byte b = got.get(i);
                boolean written = i < w.length;
                // In either order the range reads zeroes, but for W in the written bytes if the write came last;
                // past the punch the old bytes stay.
                byte before = i < punched ? 0 : (byte) 'P';
                assertTrue(b == before || written && b == 'W', "byte " + (4096 + i) + " is '" + (char) b + "'");
            }
        } finally {
            threads.shutdownNow();
        }
    }
}
