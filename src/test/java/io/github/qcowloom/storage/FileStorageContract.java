package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
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

    @Override
    protected Storage createEmpty() throws IOException {
        return FileStorage.create(dir.resolve("file" + files.incrementAndGet()), direct());
    }

    @Override
    protected Storage createReadOnly(byte[] contents) throws IOException {
        Path file = dir.resolve("file" + files.incrementAndGet());
        Files.write(file, contents);
        return FileStorage.open(file, true, direct());
    }

    @Test
    void contentsReachTheHostFileAndSurviveReopening() throws IOException {
        Path file = dir.resolve("reopen");
        byte[] data = pattern(12_345, 1);
        try (FileStorage s = FileStorage.create(file, direct())) {
            assertEquals(file, s.path());
            assertEquals(direct(), s.direct());
            s.write(ByteBuffer.wrap(data), 0);
            s.flush();
        }
        assertArrayEquals(data, Files.readAllBytes(file));
        try (FileStorage s = FileStorage.open(file, false, direct())) {
            assertEquals(data.length, s.size());
            assertArrayEquals(data, readAll(s));
        }
    }

    @Test
    void hostFileLengthMatchesAfterConcurrentExtendingWrites() throws Exception {
        Path file = dir.resolve("grow");
        try (FileStorage s = FileStorage.create(file, direct())) {
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
        try (FileStorage s = FileStorage.create(file, direct())) {
            assertEquals(0, s.size());
        }
        assertThrows(NoSuchFileException.class, () -> FileStorage.open(dir.resolve("missing"), false, direct()));
        assertThrows(NoSuchFileException.class, () -> FileStorage.open(dir.resolve("missing"), true, direct()));
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
            Thread victim = Thread.ofVirtual().unstarted(() -> {
                Thread.currentThread().interrupt();
                assertThrows(ClosedByInterruptException.class, () -> s.read(ByteBuffer.allocate(10), 0));
                assertTrue(Thread.interrupted(), "the interrupt stays visible to the caller");
            });
            victim.start();
            victim.join();
            assertFalse(Thread.currentThread().isInterrupted());
            s.write(ByteBuffer.wrap(pattern(100, 4)), 100);
            s.flush();
            byte[] all = readAll(s);
            assertArrayEquals(pattern(100, 3), Arrays.copyOf(all, 100), "reopening must not truncate");
            assertArrayEquals(pattern(100, 4), Arrays.copyOfRange(all, 100, 200));
        }
    }
}
