package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.ZeroRangeHere;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The {@link Storage} contract and file-specific behaviour of {@link FileStorage}, for one I/O mode. */
abstract class FileStorageContract extends StorageContract {
    private final AtomicInteger files = new AtomicInteger();

    @TempDir
    Path dir;

    /** True to test O_DIRECT. */
    protected abstract boolean direct();

    /** The backend under test. */
    protected StorageBackend backend() {
        return StorageBackend.FILECHANNEL;
    }

    private FileStorage create(Path file) throws IOException {
        return FileStorage.create(file, direct(), backend());
    }

    private FileStorage open(Path file, boolean readOnly) throws IOException {
        return FileStorage.open(file, readOnly, direct(), backend());
    }

    @Test
    void theBackendAskedForIsTheOneUsed() throws IOException {
        try (FileStorage s = create(dir.resolve("backend"))) {
            assertEquals(backend(), s.backend(), "io_uring must run on this machine, not fall back");
        }
    }

    /**
     * A hole inside the file frees the host's blocks, as QEMU's raw discard does (fallocate PUNCH_HOLE): through
     * io_uring, beside FileChannel where it is the default (buffered), or by fallocate(2) itself where FileChannel
     * was asked for by name.
     */
    @Test
    void punchingAHoleInsideTheFileFreesItsBlocks() throws IOException {
        for (StorageBackend asked : backendsAsked()) {
            Path file = dir.resolve("holes-" + asked);
            try (FileStorage s = FileStorage.create(file, direct(), asked)) {
                byte[] data = written(s, 9);
                long before = Images.hostBytes(file);
                s.punchHole((1 << 20) + 100, 2 << 20); // unaligned edges: zeroes there, the blocks between freed
                s.flush();
                Arrays.fill(data, (1 << 20) + 100, (3 << 20) + 100, (byte) 0);
                assertArrayEquals(data, readAll(s), asked.toString());
                assertEquals(4 << 20, s.size());
                long freed = before - Images.hostBytes(file);
                assertTrue(freed >= (2 << 20) - 8192, asked + ": freed " + freed + " of " + before);
            }
        }
    }

    /** 4 MiB of pattern {@code seed} written at 0 and flushed; returns them. */
    private static byte[] written(FileStorage s, int seed) throws IOException {
        byte[] data = pattern(4 << 20, seed);
        s.write(ByteBuffer.wrap(data), 0);
        s.flush();
        return data;
    }

    /** This class's backend as the default picks it (FileChannel's as AUTO does), and FileChannel by name. */
    private List<StorageBackend> backendsAsked() {
        return List.of(backend() == StorageBackend.FILECHANNEL ? StorageBackend.AUTO : backend(),
                StorageBackend.FILECHANNEL);
    }

    /**
     * A zero write that keeps its space fallocates ZERO_RANGE over the whole blocks of its range and writes zeroes
     * only over the partial edge blocks (with O_DIRECT; through the page cache the kernel zeroes partial pages), as
     * QEMU's file layer zeroes them: the blocks between read as a hole (an unwritten extent), the space stays.
     */
    @Test
    void zeroesKeepingSpaceFallocateTheWholeBlocks() throws IOException {
        assumeTrue(ZeroRangeHere.works(dir), "no fallocate(ZERO_RANGE) here: io_uring or the file system lacks it");
        Path file = dir.resolve("zeroes");
        StorageBackend asked = backend() == StorageBackend.FILECHANNEL ? StorageBackend.AUTO : backend();
        try (FileStorage s = FileStorage.create(file, direct(), asked)) {
            byte[] data = pattern(4 << 20, 13);
            s.write(ByteBuffer.wrap(data), 0);
            s.flush();
            long before = Images.hostBytes(file);
            long from = (1L << 20) + 100;
            s.zeroKeepingSpace(from, 2 << 20);
            s.flush();
            int block = Math.max(s.alignment(), 4096); // the file system's, where the page cache moves the bytes
            long wholeFrom = (from + block - 1) / block * block;
            long wholeTo = (from + (2 << 20)) / block * block;
            try (HoleMap holes = HoleMap.open(file)) { // before the blocks are read: cached pages count as data
                assertTrue(holes.nextData(wholeFrom) >= wholeTo, "the whole blocks fallocated, not written");
            }
            assertTrue(Images.hostBytes(file) >= before, "the space is kept");
            Arrays.fill(data, (int) from, (int) from + (2 << 20), (byte) 0);
            assertArrayEquals(data, readAll(s));
        }
    }

    /**
     * A discard frees the whole blocks of its range where a hole can be punched (FileChannel asked for by name too)
     * and leaves the partial edge blocks as they were.
     */
    @Test
    void discardFreesWholeBlocksAndWritesNothingElse() throws IOException {
        for (StorageBackend asked : backendsAsked()) {
            Path file = dir.resolve("discards-" + asked);
            try (FileStorage s = FileStorage.create(file, direct(), asked)) {
                byte[] data = written(s, 11);
                long before = Images.hostBytes(file);
                int block = s.alignment();
                long from = (1L << 20) + 100;
                s.discard(from, 2 << 20);
                s.flush();
                long wholeFrom = (from + block - 1) / block * block;
                long wholeTo = (from + (2 << 20)) / block * block;
                Arrays.fill(data, (int) wholeFrom, (int) wholeTo, (byte) 0);
                assertArrayEquals(data, readAll(s), asked + ": zeroes over the whole blocks, the edges' bytes kept");
                assertEquals(4 << 20, s.size());
                long freed = before - Images.hostBytes(file);
                assertTrue(freed >= (2 << 20) - 8192, asked + ": freed " + freed + " of " + before);
            }
        }
    }

    @Override
    protected Storage createEmpty() throws IOException {
        return create(dir.resolve("file" + files.incrementAndGet()));
    }

    @Override
    protected Storage createReadOnly(byte[] contents) throws IOException {
        Path file = dir.resolve("file" + files.incrementAndGet());
        Files.write(file, contents);
        return open(file, true);
    }

    @Test
    void rangedSyncsKeepTheBytesAndTheSizeWhereverTheRangeLies() throws IOException {
        Path file = dir.resolve("ranged");
        byte[] data = pattern(3 * 4096 + 100, 5);
        try (FileStorage s = create(file)) {
            s.write(ByteBuffer.wrap(data), 0);
            s.flushRange(4096, 8); // inside one page
            s.flushRange(100, 8192); // across pages, unaligned
            s.flushRange(3 * 4096, 4096); // reaching past the end: a writable mapping must not extend the file
            s.flushRange(1 << 20, 4096); // wholly past the end
            s.flushRange(0, 0);
            assertEquals(data.length, s.size());
            assertEquals(data.length, Files.size(file));
            assertArrayEquals(data, readAll(s));
            assertThrows(IllegalArgumentException.class, () -> s.flushRange(-1, 8));
        }
        try (FileStorage s = open(file, true)) {
            s.flushRange(0, 4096); // read-only: nothing to make durable, and no writable mapping to make
            assertArrayEquals(data, readAll(s));
        }
    }

    @Test
    void preallocationGrowsTheFileWithZeroesAndKeepsItsBytes() throws IOException {
        Path file = dir.resolve("prealloc");
        byte[] data = pattern(8192, 3);
        // Only O_DIRECT through io_uring preallocates: elsewhere it would not pay (see FileStorage.preallocate).
        boolean allocates = direct() && backend() == StorageBackend.IO_URING;
        long expected = allocates ? 4096 + (1 << 20) : data.length;
        try (FileStorage s = create(file)) {
            s.write(ByteBuffer.wrap(data), 0);
            long before = Images.hostBytes(file);
            s.preallocate(4096, 1 << 20); // over half of the data, whose bytes stay
            assertEquals(expected, s.size());
            byte[] all = readAll(s);
            assertArrayEquals(data, Arrays.copyOf(all, data.length));
            for (int i = data.length; i < all.length; i++) {
                assertEquals(0, all[i], "byte " + i);
            }
            if (allocates) {
                assertTrue(Images.hostBytes(file) >= before + (1 << 20) - 8192, "1 MiB allocated on the host");
            }
        }
        assertEquals(expected, Files.size(file));
    }

    /**
     * reserve (preallocation=falloc) takes the range's space on the host and grows the file over it, reading as
     * zeroes, through fallocate (zeroes written where it cannot run, Java 21).
     */
    @Test
    void reservingGrowsTheFileOverAllocatedZeroes() throws IOException {
        for (StorageBackend asked : backendsAsked()) {
            Path file = dir.resolve("reserved-" + asked);
            byte[] data = pattern(8192, 4);
            try (FileStorage s = FileStorage.create(file, direct(), asked)) {
                s.write(ByteBuffer.wrap(data), 0);
                long before = Images.hostBytes(file);
                s.reserve(64 << 10, 2 << 20); // a hole in between, then the reserved range past the old end
                assertEquals((64 << 10) + (2 << 20), s.size(), asked.toString());
                byte[] all = readAll(s);
                assertArrayEquals(data, Arrays.copyOf(all, data.length));
                for (int i = data.length; i < all.length; i++) {
                    assertEquals(0, all[i], "byte " + i);
                }
                assertTrue(Images.hostBytes(file) >= before + (2 << 20) - 8192, asked + ": 2 MiB taken on the host");
            }
            assertEquals((64 << 10) + (2 << 20), Files.size(file));
        }
    }

    @Test
    void contentsReachTheHostFileAndSurviveReopening() throws IOException {
        Path file = dir.resolve("reopen");
        byte[] data = pattern(12_345, 1);
        try (FileStorage s = create(file)) {
            assertEquals(file, s.path());
            assertEquals(direct(), s.direct());
            s.write(ByteBuffer.wrap(data), 0);
            s.flush();
        }
        assertArrayEquals(data, Files.readAllBytes(file));
        try (FileStorage s = open(file, false)) {
            assertEquals(data.length, s.size());
            assertArrayEquals(data, readAll(s));
        }
    }

    @Test
    void hostFileLengthMatchesAfterConcurrentExtendingWrites() throws Exception {
        Path file = dir.resolve("grow");
        try (FileStorage s = create(file)) {
            try (ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor()) {
                for (int i = 0; i < 64; i++) {
                    long at = 5 + i * 1001L;
                    executor.submit(() -> {
                        s.write(ByteBuffer.wrap(pattern(999, at)), at);
                        return null;
                    });
                }
            }
            assertEquals(5 + 63 * 1001L + 999, s.size());
            assertEquals(s.size(), Files.size(file));
        }
    }

    @Test
    void createTruncatesAndOpenRequiresTheFile() throws IOException {
        Path file = dir.resolve("existing");
        Files.write(file, pattern(1000, 2));
        try (FileStorage s = create(file)) {
            assertEquals(0, s.size());
        }
        assertThrows(NoSuchFileException.class, () -> open(dir.resolve("missing"), false));
        assertThrows(NoSuchFileException.class, () -> open(dir.resolve("missing"), true));
    }

    @Test
    void closedStorageRefusesIo() throws IOException {
        Storage s = createEmpty();
        s.close();
        assertThrows(ClosedChannelException.class, () -> s.read(ByteBuffer.allocate(1), 0));
        assertThrows(ClosedChannelException.class, () -> s.write(ByteBuffer.allocate(1), 0));
    }

    @Test
    void anInterruptedCallerDoesNotBreakTheFileForOthers() throws Exception {
        try (Storage s = createEmpty()) {
            s.write(ByteBuffer.wrap(pattern(100, 3)), 0);
            java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
            Thread victim = Thread.ofVirtual().unstarted(() -> {
                try {
                    Thread.currentThread().interrupt();
                    if (backend() == StorageBackend.FILECHANNEL) {
                        assertThrows(ClosedByInterruptException.class, () -> s.read(ByteBuffer.allocate(10), 0));
                    } else {
                        // io_uring waits for the kernel to finish with the buffer, interrupted or not
                        assertEquals(10, s.read(ByteBuffer.allocate(10), 0));
                    }
                    assertTrue(Thread.interrupted(), "the interrupt stays visible to the caller");
                } catch (Throwable t) {
                    failure.set(t);
                }
            });
            victim.start();
            victim.join();
            if (failure.get() != null) {
                throw new AssertionError("the interrupted caller", failure.get());
            }
            assertFalse(Thread.currentThread().isInterrupted());
            s.write(ByteBuffer.wrap(pattern(100, 4)), 100);
            s.flush();
            byte[] all = readAll(s);
            assertArrayEquals(pattern(100, 3), Arrays.copyOf(all, 100), "reopening must not truncate");
            assertArrayEquals(pattern(100, 4), Arrays.copyOfRange(all, 100, 200));
        }
    }
}
