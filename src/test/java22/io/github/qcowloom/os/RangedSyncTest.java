package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.storage.FileStorage;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A ranged sync writes back the page cache's dirty pages of its range and leaves the others dirty, on both
 * backends: the kernel's own count of a range's dirty pages (cachestat, Linux 6.5) says so.
 */
class RangedSyncTest {
    private static final int CACHESTAT = 451; // the same number on every architecture
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    /** Dirty pages of {@code [offset, offset + length)} of the file open as {@code fd}, or -errno. */
    private static long dirtyPages(int fd, long offset, long length) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment range = arena.allocate(16, 8);
            range.set(JAVA_LONG, 0, offset);
            range.set(JAVA_LONG, 8, length);
            MemorySegment stat = arena.allocate(40, 8); // nr_cache, nr_dirty, nr_writeback, nr_evicted, ...
            long r = LinuxCalls.syscall(LinuxCalls.errnoSegment(arena), CACHESTAT, fd, range.address(),
                    stat.address(), 0, 0, 0);
            return r < 0 ? r : stat.get(JAVA_LONG, 8);
        }
    }

    @ParameterizedTest
    @EnumSource(value = StorageBackend.class, names = {"FILECHANNEL", "IO_URING"})
    void aRangedSyncCleansItsRangeAndNoOther(StorageBackend backend) throws IOException {
        // ext4 and xfs write back a range alone; btrfs syncs whole files, and tmpfs pages are never dirty.
        String fileSystem = Files.getFileStore(dir).type();
        assumeTrue(Set.of("ext4", "xfs").contains(fileSystem), "ranged write-back is ext4's and xfs's, not "
                + fileSystem + "'s");
        Path file = dir.resolve(backend + ".img");
        try (FileStorage storage = FileStorage.create(file, false, backend);
                NativeFile watcher = NativeFile.open(file, false, false)) {
            assertEquals(backend, storage.backend(), "io_uring must run here, not fall back");
            storage.write(ByteBuffer.allocateDirect((int) MIB), 0); // guest data, say
            storage.write(ByteBuffer.allocateDirect(4096).put(0, (byte) 1), 4 * MIB); // metadata, say
            long before = dirtyPages(watcher.fd(), 4 * MIB, 4096);
            assumeTrue(before >= 0, "cachestat needs Linux 6.5 or later (errno " + -before + ")");
            assertEquals(1, before, "the page just written is dirty");
            storage.flushRange(4 * MIB, 4096);
            assertEquals(0, dirtyPages(watcher.fd(), 4 * MIB, 4096), "the range is written back");
            // Only a writeback of the whole file, or the kernel's own flusher (pages older than 30 s), cleans these.
            assertTrue(dirtyPages(watcher.fd(), 0, MIB) > 0, "the data outside the range was written back too");
            storage.flush();
            assertEquals(0, dirtyPages(watcher.fd(), 0, MIB), "a whole flush writes back everything");
        }
    }
}
