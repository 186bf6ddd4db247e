package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * What statx(2) tells of a file's blocks and Java's file attributes leave out: the bytes it occupies on its file
 * system (st_blocks × 512, what qemu-img info calls "disk size"), and the alignment O_DIRECT needs for it. statx's
 * buffer is laid out the same on every architecture.
 */
public final class FileBlocks {
    private static final int STATX_BLOCKS = 0x400;
    private static final int STATX_DIOALIGN = 0x2000;
    // struct statx: __u32 stx_mask at 0, ..., __u64 stx_blocks at 48, ..., __u32 stx_dio_mem_align at 152 and
    // stx_dio_offset_align at 156; 256 bytes in all.
    private static final long STATX_SIZE = 256;
    private static final long STX_MASK = 0;
    private static final long STX_BLOCKS = 48;
    private static final long STX_DIO_MEM_ALIGN = 152;
    private static final long STX_DIO_OFFSET_ALIGN = 156;

    private FileBlocks() {
    }

    /** The bytes {@code path} occupies: its 512-byte blocks, as st_blocks counts them. */
    public static long allocatedBytes(Path path) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = statx(arena, path, STATX_BLOCKS);
            if ((buf.get(JAVA_INT, STX_MASK) & STATX_BLOCKS) == 0) {
                throw new IOException("statx " + path + ": the file system does not count blocks");
            }
            return buf.get(JAVA_LONG, STX_BLOCKS) * 512;
        }
    }

    /**
     * The alignment O_DIRECT needs for {@code path}, of file offsets and lengths and of buffers in memory, the larger
     * of the two (statx's STATX_DIOALIGN, Linux 6.1 on: most file systems give the device's logical block for
     * both, often 512 where the file system's block is 4096), or 0 where the kernel or the file system does not
     * tell.
     */
    public static int directIoAlignment(Path path) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = statx(arena, path, STATX_DIOALIGN);
            if ((buf.get(JAVA_INT, STX_MASK) & STATX_DIOALIGN) == 0) {
                return 0;
            }
            return Math.max(buf.get(JAVA_INT, STX_DIO_OFFSET_ALIGN), buf.get(JAVA_INT, STX_DIO_MEM_ALIGN));
        }
    }

    private static MemorySegment statx(Arena arena, Path path, int mask) throws IOException {
        LinuxCalls.requireSupported();
        MemorySegment buf = arena.allocate(STATX_SIZE, 8);
        LinuxCalls.check(LinuxCalls.syscall(LinuxCalls.errnoSegment(arena), SyscallNumbers.STATX,
                LinuxCalls.AT_FDCWD, arena.allocateFrom(path.toString()).address(), 0, mask, buf.address(), 0),
                "statx " + path);
        return buf;
    }
}
