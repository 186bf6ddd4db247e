package io.github.qcowloom.os;

/**
 * The numbers of the system calls {@link LinuxCalls} makes, on Linux. amd64 has its own table; aarch64 has the
 * generic one (include/uapi/asm-generic/unistd.h), which has no open (only openat) and gives lseek, fcntl, mmap and
 * fadvise64 their 64-bit entries. Anywhere else every number is -1, and {@link LinuxCalls#unsupportedReason}
 * keeps every caller off.
 */
final class SyscallNumbers {
    private static final boolean LINUX = System.getProperty("os.name").equals("Linux");
    private static final boolean AMD64 = LINUX && switch (System.getProperty("os.arch")) {
        case "amd64", "x86_64" -> true;
        default -> false;
    };
    private static final boolean AARCH64 = LINUX && System.getProperty("os.arch").equals("aarch64");

    /** Whether this machine's numbers are the ones here: Linux on amd64 or aarch64. */
    static final boolean KNOWN = AMD64 || AARCH64;

    static final long CLOSE = number(3, 57);
    static final long LSEEK = number(8, 62);
    static final long MMAP = number(9, 222);
    static final long MUNMAP = number(11, 215);
    static final long PREAD64 = number(17, 67);
    static final long PWRITE64 = number(18, 68);
    static final long RECVFROM = number(45, 207);
    static final long SHUTDOWN = number(48, 210);
    static final long FCNTL = number(72, 25);
    static final long FDATASYNC = number(75, 83);
    static final long FTRUNCATE = number(77, 46);
    static final long FADVISE64 = number(221, 223);
    static final long OPENAT = number(257, 56);
    static final long FALLOCATE = number(285, 47);
    static final long STATX = number(332, 291);
    static final long PREADV2 = number(327, 286);
    static final long COPY_FILE_RANGE = number(326, 285);
    static final long IO_URING_SETUP = number(425, 425);
    static final long IO_URING_ENTER = number(426, 426);

    private SyscallNumbers() {
    }

    private static long number(long amd64, long aarch64) {
        return AMD64 ? amd64 : AARCH64 ? aarch64 : -1;
    }
}
