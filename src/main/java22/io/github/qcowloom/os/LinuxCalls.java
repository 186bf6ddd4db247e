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
import java.lang.invoke.VarHandle;

/**
 * The libc calls the native layer makes, as FFM downcalls: {@code syscall} (for io_uring, which libc does not
 * wrap), {@code open}, {@code close}, {@code mmap}, {@code munmap}, {@code strerror}. Calls that can fail capture
 * errno into a segment the caller passes, so that a caller making many calls reuses one.
 */
final class LinuxCalls {
    static final long SYS_IO_URING_SETUP = 425;
    static final long SYS_IO_URING_ENTER = 426;

    static final int EINTR = 4;
    static final int EAGAIN = 11;
    static final int EBUSY = 16;
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

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CAPTURE.varHandle(MemoryLayout.PathElement.groupElement("errno"));

    // The downcalls, linked in groups on first use: linking costs milliseconds a handle, so a short command that
    // takes an image lock links open and close, not the ring's calls.

    /** The ring's calls: io_uring's system calls and its mappings. */
    private static final class RingCalls {
        static final MethodHandle SYSCALL6 = downcall("syscall",
                FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                        JAVA_LONG),
                Linker.Option.firstVariadicArg(1), Linker.Option.captureCallState("errno"));
        static final MethodHandle MMAP = downcall("mmap",
                FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG),
                Linker.Option.captureCallState("errno"));
        static final MethodHandle MUNMAP = downcall("munmap",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    }

    private static final class DescriptorCalls {
        static final MethodHandle OPEN = downcall("open",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
                Linker.Option.firstVariadicArg(2), Linker.Option.captureCallState("errno"));
        static final MethodHandle CLOSE = downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    }

    /** The calls a request alone in the process makes without the ring. */
    private static final class BlockingCalls {
        static final MethodHandle PREAD = downcall("pread",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG),
                Linker.Option.captureCallState("errno"));
        static final MethodHandle PWRITE = downcall("pwrite",
                FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG),
                Linker.Option.captureCallState("errno"));
        static final MethodHandle FDATASYNC = downcall("fdatasync", FunctionDescriptor.of(JAVA_INT, JAVA_INT),
                Linker.Option.captureCallState("errno"));
        static final MethodHandle FALLOCATE = downcall("fallocate",
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG),
                Linker.Option.captureCallState("errno"));
    }

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
        if (O_DIRECT == 0) {
            return "native calls are implemented for amd64 and aarch64 only, not " + System.getProperty("os.arch");
        }
        return null;
    }

    /** A downcall to libc's {@code name}. */
    static MethodHandle downcall(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        MemorySegment symbol = LINKER.defaultLookup().find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, descriptor, options);
    }

    /** A segment for the errno of calls made by one thread at a time. */
    static MemorySegment errnoSegment(Arena arena) {
        return arena.allocate(CAPTURE);
    }

    static int errno(MemorySegment capture) {
        return (int) ERRNO.get(capture, 0L);
    }

    /** A raw system call; returns its result, or -errno on failure (the kernel's own convention). */
    static long syscall(MemorySegment capture, long number, long a, long b, long c, long d, long e, long f) {
        long r;
        try {
            r = (long) RingCalls.SYSCALL6.invokeExact(capture, number, a, b, c, d, e, f);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return r == -1 ? -errno(capture) : r;
    }

    /**
     * Links open and close now, and runs each once on nothing (an empty path, no descriptor: ENOENT, EBADF), so
     * that the first real call finds its invocation path made (see {@link OfdLock#link}).
     */
    static void linkDescriptorCalls() {
        try (Arena arena = Arena.ofConfined()) {
            int ignored = (int) DescriptorCalls.OPEN.invokeExact(errnoSegment(arena), arena.allocateFrom(""),
                    O_RDONLY | O_CLOEXEC, 0);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        close(-1);
    }

    /** open(2); returns the descriptor or throws with the path and the reason. */
    static int open(String path, int flags) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = errnoSegment(arena);
            int fd = (int) DescriptorCalls.OPEN.invokeExact(capture, arena.allocateFrom(path), flags | O_CLOEXEC,
                    0);
            if (fd < 0) {
                throw new IOException(path + ": " + strerror(errno(capture)));
            }
            return fd;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    static void close(int fd) {
        try {
            int ignored = (int) DescriptorCalls.CLOSE.invokeExact(fd);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * pread(2), pwrite(2), fdatasync(2) or fallocate(2) ({@code opcode} as io_uring names them, and its SQE's
     * fields: for fallocate {@code address} is the length and {@code length} the mode) made directly, blocking the
     * caller's thread; returns the result or -errno, as a ring completion would.
     */
    static long blocking(byte opcode, int fd, long address, int length, long offset) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = errnoSegment(arena);
            long r = switch (opcode) {
                case IoUring.OP_READ ->
                        (long) BlockingCalls.PREAD.invokeExact(capture, fd, address, (long) length, offset);
                case IoUring.OP_WRITE ->
                        (long) BlockingCalls.PWRITE.invokeExact(capture, fd, address, (long) length, offset);
                case IoUring.OP_FSYNC -> (long) (int) BlockingCalls.FDATASYNC.invokeExact(capture, fd);
                case IoUring.OP_FALLOCATE ->
                        (long) (int) BlockingCalls.FALLOCATE.invokeExact(capture, fd, length, offset, address);
                default -> throw new IllegalArgumentException("opcode " + opcode);
            };
            return r < 0 ? -errno(capture) : r;
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** mmap(2) of {@code length} bytes of {@code fd} at {@code offset}, shared and read-write. */
    static MemorySegment mmap(int fd, long length, long offset) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = errnoSegment(arena);
            MemorySegment at = (MemorySegment) RingCalls.MMAP.invokeExact(capture, MemorySegment.NULL, length,
                    PROT_READ_WRITE, MAP_SHARED_POPULATE, fd, offset);
            if (at.address() == -1L) {
                throw new IOException("mmap: " + strerror(errno(capture)));
            }
            return at.reinterpret(length);
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    static void munmap(MemorySegment mapping) {
        try {
            int ignored = (int) RingCalls.MUNMAP.invokeExact(mapping, mapping.byteSize());
        } catch (Throwable t) {
            throw new AssertionError(t);
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
