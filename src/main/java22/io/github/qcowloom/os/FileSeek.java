package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * lseek(2) with SEEK_DATA and SEEK_HOLE: where a file's data and holes begin, as QEMU's file-posix block status
 * asks (FileChannel cannot).
 */
public final class FileSeek {
    private static final int SEEK_DATA = 3;
    private static final int SEEK_HOLE = 4;
    private static final int ENXIO = 6;
    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle LSEEK = LINKER.downcallHandle(
            LINKER.defaultLookup().find("lseek").orElseThrow(() -> new UnsatisfiedLinkError("libc has no lseek")),
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT), Linker.Option.captureCallState("errno"));

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
            MemorySegment capture = LinuxCalls.errnoSegment(arena);
            long r = (long) LSEEK.invokeExact(capture, fd, offset, whence);
            if (r >= 0) {
                return r;
            }
            int errno = LinuxCalls.errno(capture);
            if (errno == ENXIO) {
                return -1;
            }
            throw new IOException("lseek: " + LinuxCalls.strerror(errno));
        } catch (IOException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
