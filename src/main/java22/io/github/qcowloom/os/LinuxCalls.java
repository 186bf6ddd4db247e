package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * The system calls the disk layer makes (io_uring's, openat, close, pread64, preadv2, pwrite64, fdatasync,
 * fallocate, mmap, munmap, fcntl, lseek, statx, fadvise64, copy_file_range), every one through a single FFM
 * downcall of libc's {@code syscall}, and {@code strerror} for messages. Linking a downcall is the larger part of a
 * short command's start-up (about 30 ms for the first, 5-10 ms for each further shape, none of it held by the JDK's
 * AOT cache), and handles of one shape share it: so one shape, seven longs (the number and six arguments), pointers
 * passed as addresses. Calls that can fail capture errno into a segment the caller passes, so that a caller making
 * many calls reuses one.
 */
final class LinuxCalls {
    static final int EINTR = 4;
    static final int EAGAIN = 11;
    static final int EBUSY = 16;
    static final int EINVAL = 22;
    static final int EOPNOTSUPP = 95;
    static final int ECANCELED = 125;

    static final int O_RDONLY = 0;
    static final int O_RDWR = 2;
    static final int O_CLOEXEC = 0x80000;

    /** O_DIRECT differs between architectures; the native layer runs only where it knows the value. */
    static final int O_DIRECT = switch (System.getProperty("os.arch")) {
        case "amd64", "x86_64" -> 0x4000;
        case "aarch64" -> 0x10000;
        default -> 0;
    };

    static final int PROT_READ_WRITE = 0x3;
    static final int MAP_SHARED_POPULATE = 0x01 | 0x8000;
    static final long AT_FDCWD = -100;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    // An offset read with a plain get: a layout path's VarHandle would be one more handle to build at start.
    private static final long ERRNO = CAPTURE.byteOffset(MemoryLayout.PathElement.groupElement("errno"));

    /**
     * syscall(2) is variadic in C, but linked as a fixed function of seven longs: declaring it variadic makes the
     * linker bind the count of vector registers (AL on amd64) into the handle, another dozen method-handle classes
     * spun at start (12 ms). At the machine level the two are the same call for integer arguments: glibc's amd64
     * syscall is assembly that moves registers and never reads AL (a C callee that does only tests it for zero
     * before saving vector registers), and aarch64's Linux ABI passes variadic arguments as fixed ones.
     */
    private static final class Syscall {
        static final MethodHandle SYSCALL6 = downcall("syscall",
                FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                        JAVA_LONG),
                Linker.Option.captureCallState("errno"));
    }

    /** Messages only: linked at the first error. */
    private static final class MessageCalls {
        static final MethodHandle STRERROR = downcall("strerror", FunctionDescriptor.of(ADDRESS, JAVA_INT));
    }

    private LinuxCalls() {
    }

    /** Why these calls cannot be made on this machine, or null if they can. */
    static String unsupportedReason() {
        if (!System.getProperty("os.name").equals("Linux")) {
            return "native calls are implemented for Linux only, not " + System.getProperty("os.name");
        }
        if (!SyscallNumbers.KNOWN) {
            return "native calls are implemented for amd64 and aarch64 only, not " + System.getProperty("os.arch");
        }
        return null;
    }

    /** fallocate's modes: PUNCH_HOLE | KEEP_SIZE (the blocks freed) and ZERO_RANGE | KEEP_SIZE (the blocks kept). */
    static final int PUNCH_HOLE = 0x1 | 0x2;
    static final int ZERO_RANGE = 0x1 | 0x10;

    /**
     * Throws UnsupportedOperationException with {@link #unsupportedReason} where these calls cannot be made: the
     * entry points call it first, so that no system call number is ever made on a machine it is not this one's.
     */
    static void requireSupported() {
        String reason = unsupportedReason();
        if (reason != null) {
            throw new UnsupportedOperationException(reason);
        }
    }

    /** A downcall to libc's {@code name}. */
    private static MethodHandle downcall(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        // No lambda here: the JDK's AOT cache holds none of this layer's classes, so each would be spun at start.
        Optional<MemorySegment> symbol = LINKER.defaultLookup().find(name);
        if (symbol.isEmpty()) {
            throw new UnsatisfiedLinkError("libc has no " + name);
        }
        return LINKER.downcallHandle(symbol.get(), descriptor, options);
    }

    /** A segment for the errno of calls made by one thread at a time. */
    static MemorySegment errnoSegment(Arena arena) {
        return arena.allocate(CAPTURE);
    }

    static int errno(MemorySegment capture) {
        return capture.get(JAVA_INT, ERRNO);
    }

    /** {@code result}, or an IOException "what: strerror" if it is -errno. */
    static long check(long result, String what) throws IOException {
        if (result < 0) {
            throw new IOException(what + ": " + strerror((int) -result));
        }
        return result;
    }

    /** A system call; returns its result, or -errno on failure (the kernel's own convention). */
    static long syscall(MemorySegment capture, long number, long a, long b, long c, long d, long e, long f) {
        long r;
        try {
            r = (long) Syscall.SYSCALL6.invokeExact(capture, number, a, b, c, d, e, f);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return r == -1 ? -errno(capture) : r;
    }

    /**
     * Links the system call downcall now and makes one call through it on nothing (close(-1): EBADF), so that the
     * first real call finds its invocation path made (see {@link OfdLock#link}).
     */
    static void link() {
        close(-1);
    }

    /** openat(2) of {@code path} from the working directory; returns the descriptor or throws with the reason. */
    static int open(String path, int flags) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = errnoSegment(arena);
            return (int) check(syscall(capture, SyscallNumbers.OPENAT, AT_FDCWD,
                    arena.allocateFrom(path).address(), flags | O_CLOEXEC, 0, 0, 0), path);
        }
    }

    static void close(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            long ignored = syscall(errnoSegment(arena), SyscallNumbers.CLOSE, fd, 0, 0, 0, 0, 0);
        }
    }

    /**
     * pread(2), pwrite(2), fdatasync(2) or fallocate(2) ({@code opcode} as io_uring names them, and its SQE's
     * fields: for fallocate {@code address} is the length and {@code length} the mode) made directly, blocking the
     * caller's thread; returns the result or -errno, as a ring completion would.
     */
    static long blocking(byte opcode, int fd, long address, int length, long offset) {
        try (Arena arena = Arena.ofConfined()) {
            return blocking(errnoSegment(arena), opcode, fd, address, length, offset);
        }
    }

    /** As {@link #blocking(byte, int, long, int, long)}, errno captured in {@code capture} (an event loop's own). */
    static long blocking(MemorySegment capture, byte opcode, int fd, long address, int length, long offset) {
        return switch (opcode) {
            case IoUring.OP_READ -> syscall(capture, SyscallNumbers.PREAD64, fd, address, length, offset, 0, 0);
            case IoUring.OP_WRITE -> syscall(capture, SyscallNumbers.PWRITE64, fd, address, length, offset, 0, 0);
            case IoUring.OP_FSYNC -> syscall(capture, SyscallNumbers.FDATASYNC, fd, 0, 0, 0, 0, 0);
            case IoUring.OP_FTRUNCATE -> syscall(capture, SyscallNumbers.FTRUNCATE, fd, offset, 0, 0, 0, 0);
            case IoUring.OP_FALLOCATE -> syscall(capture, SyscallNumbers.FALLOCATE, fd, length, offset, address, 0, 0);
            default -> throw new IllegalArgumentException("opcode " + opcode);
        };
    }

    /** mmap(2) of {@code length} bytes of {@code fd} at {@code offset}, shared and read-write. */
    static MemorySegment mmap(int fd, long length, long offset) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            // No user-space mapping lies at a negative address: a negative result is -errno.
            long at = check(syscall(errnoSegment(arena), SyscallNumbers.MMAP, 0, length, PROT_READ_WRITE,
                    MAP_SHARED_POPULATE, fd, offset), "mmap");
            return MemorySegment.ofAddress(at).reinterpret(length);
        }
    }

    static void munmap(MemorySegment mapping) {
        try (Arena arena = Arena.ofConfined()) {
            long ignored = syscall(errnoSegment(arena), SyscallNumbers.MUNMAP, mapping.address(),
                    mapping.byteSize(), 0, 0, 0, 0);
        }
    }

    /** The C library's message for an errno value, as FileChannel's exceptions carry it. */
    static String strerror(int errno) {
        try {
            MemorySegment text = (MemorySegment) MessageCalls.STRERROR.invokeExact(errno);
            return text.reinterpret(256).getString(0);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
