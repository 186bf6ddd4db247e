package io.github.qcowloom.os;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * A file's pages in the host's page cache, dropped (fdatasync, then posix_fadvise DONTNEED): an O_DIRECT write to
 * a range the page cache holds must first write back and invalidate those pages, which io_uring cannot do inline and
 * hands to its worker threads. A benchmark of O_DIRECT requests starts from a file without them, as a guest running
 * with cache=none meets its image.
 */
public final class FileCache {
    private static final int POSIX_FADV_DONTNEED = 4;

    private FileCache() {
    }

    /**
     * Writes back and drops every page of {@code path} the page cache holds.
     *
     * @throws UnsupportedOperationException where the native layer cannot run
     */
    public static void drop(Path path) throws IOException {
        LinuxCalls.requireSupported();
        int fd = LinuxCalls.open(path.toString(), LinuxCalls.O_RDONLY);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            LinuxCalls.check(LinuxCalls.syscall(capture, SyscallNumbers.FDATASYNC, fd, 0, 0, 0, 0, 0),
                    "fdatasync " + path);
            LinuxCalls.check(LinuxCalls.syscall(capture, SyscallNumbers.FADVISE64, fd, 0, 0, POSIX_FADV_DONTNEED,
                    0, 0), "posix_fadvise " + path);
        } finally {
            LinuxCalls.close(fd);
        }
    }
}
