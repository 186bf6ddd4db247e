package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Shared mappings of memory descriptors (the memfds a vhost-user front end passes for guest RAM): mmap with
 * MAP_SHARED, not populated (the guest's RAM is large and mostly untouched), unmapped when the arena that owns
 * the segment closes; and memfd_create for the side that creates such memory (tests, embedders).
 */
public final class SharedMemory {
    private static final int MAP_SHARED = 0x01;
    private static final int MAP_NORESERVE = 0x4000;
    private static final int PROT_READ_WRITE = 0x3;
    private static final int MFD_CLOEXEC = 1;
    private static final Linker LINKER = Linker.nativeLinker();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");
    private static final MethodHandle MMAP = downcall("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = downcall("munmap", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle MEMFD_CREATE = downcall("memfd_create",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle FTRUNCATE = downcall("ftruncate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));

    private SharedMemory() {
    }

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor) {
        MemorySegment symbol = LINKER.defaultLookup().find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, descriptor, ERRNO);
    }

    /**
     * Maps {@code length} bytes of {@code fd} from offset 0, shared and read-write, as a segment of
     * {@code arena}: closing the arena unmaps it (a shared arena refuses to close while another thread accesses
     * it, so the mapping never vanishes under an access).
     */
    public static MemorySegment map(int fd, long length, Arena arena) throws IOException {
        if (length < 1) {
            throw new IOException("mapping of " + length + " bytes");
        }
        // A mapping past the file's end maps pages that do not exist: touching one is SIGBUS, which the JVM raises
        // as an InternalError in whichever thread touched it. A peer's file (vhost-user's guest memory) is sized
        // first; one it shrinks later is the readers' to survive.
        Path file = Path.of("/proc/self/fd/" + fd);
        long fileSize = Files.isRegularFile(file) ? Files.size(file) : Long.MAX_VALUE; // a device has no size here
        if (fileSize < length) {
            throw new IOException("mapping of " + length + " bytes of a file of " + fileSize);
        }
        try (Arena call = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(call);
            MemorySegment at = (MemorySegment) MMAP.invokeExact(capture, MemorySegment.NULL, length,
                    PROT_READ_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0L);
            if (at.address() == -1L) {
                throw new IOException("mmap of " + length + " bytes: "
                        + LinuxCalls.strerror(LinuxCalls.errno(capture)));
            }
            long address = at.address();
            return at.reinterpret(length, arena, s -> unmap(address, length));
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    private static void unmap(long address, long length) {
        try (Arena call = Arena.ofConfined()) {
            int ignored = (int) MUNMAP.invokeExact(LinuxCalls.errnoSegment(call), MemorySegment.ofAddress(address),
                    length);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** A new memfd of {@code size} bytes (zeroes), close-on-exec. */
    public static int memfd(String name, long size) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            int fd = (int) MEMFD_CREATE.invokeExact(capture, arena.allocateFrom(name), MFD_CLOEXEC);
            if (fd < 0) {
                throw new IOException("memfd_create: " + LinuxCalls.strerror(LinuxCalls.errno(capture)));
            }
            if ((int) FTRUNCATE.invokeExact(capture, fd, size) < 0) {
                IOException e = new IOException("ftruncate: " + LinuxCalls.strerror(LinuxCalls.errno(capture)));
                LinuxCalls.close(fd);
                throw e;
            }
            return fd;
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static void close(int fd) {
        LinuxCalls.close(fd);
    }
}
