package io.github.qcowloom.os;

import java.io.IOException;
import java.lang.foreign.Arena;

/**
 * lseek(2) with SEEK_DATA and SEEK_HOLE: where a file's data and holes begin, as QEMU's file-posix block status
 * asks (FileChannel cannot).
 */
public final class FileSeek {
    private static final int SEEK_DATA = 3;
    private static final int SEEK_HOLE = 4;
    private static final int ENXIO = 6;

    private FileSeek() {
    }

    /** The first byte at or after {@code offset} that lies in data, or -1 if only a hole follows (ENXIO). */
    public static long data(int fd, long offset) throws IOException {
        return seek(fd, offset, SEEK_DATA);
    }

    /** The first byte at or after {@code offset} that lies in a hole (the end of the file counts as one), or -1. */
    public static long hole(int fd, long offset) throws IOException {
        return seek(fd, offset, SEEK_HOLE);
    }

    private static long seek(int fd, long offset, int whence) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            long r = LinuxCalls.syscall(LinuxCalls.errnoSegment(arena), SyscallNumbers.LSEEK, fd, offset, whence, 0,
                    0, 0);
            return r == -ENXIO ? -1 : LinuxCalls.check(r, "lseek");
        }
    }
}
