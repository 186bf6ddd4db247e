package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * The bytes a file occupies on its file system (st_blocks × 512, what qemu-img info calls "disk size"), which Java's
 * file attributes leave out. Asked with statx(2), whose buffer is laid out the same on every architecture.
 */
public final class FileBlocks {
    private static final int STATX_BLOCKS = 0x400;
    // struct statx: __u32 stx_mask at 0, ..., __u64 stx_blocks at 48; 256 bytes in all.
    private static final long STATX_SIZE = 256;
    private static final long STX_MASK = 0;
    private static final long STX_BLOCKS = 48;

    private FileBlocks() {
    }

    /** The bytes {@code path} occupies: its 512-byte blocks, as st_blocks counts them. */
    public static long allocatedBytes(Path path) throws IOException {
        LinuxCalls.requireSupported();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(STATX_SIZE, 8);
            LinuxCalls.check(LinuxCalls.syscall(LinuxCalls.errnoSegment(arena), SyscallNumbers.STATX,
                    LinuxCalls.AT_FDCWD, arena.allocateFrom(path.toString()).address(), 0, STATX_BLOCKS,
                    buf.address(), 0), "statx " + path);
            if ((buf.get(JAVA_INT, STX_MASK) & STATX_BLOCKS) == 0) {
                throw new IOException("statx " + path + ": the file system does not count blocks");
            }
            return buf.get(JAVA_LONG, STX_BLOCKS) * 512;
        }
    }
}
