package io.github.qcowloom.os;

import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Path;

/** A file descriptor of our own, for requests through {@link UringQueue}: buffered or O_DIRECT. */
public final class NativeFile implements Closeable {
    private final int fd;

    private NativeFile(int fd) {
        this.fd = fd;
    }

    /**
     * Opens an existing file read-only or read-write (never creating or truncating it).
     *
     * @throws UnsupportedOperationException where the native layer cannot run
     */
    public static NativeFile open(Path path, boolean writable, boolean direct) throws IOException {
        LinuxCalls.requireSupported();
        int flags = (writable ? LinuxCalls.O_RDWR : LinuxCalls.O_RDONLY) | (direct ? LinuxCalls.O_DIRECT : 0);
        return new NativeFile(LinuxCalls.open(path.toString(), flags));
    }

    /** The descriptor, valid until {@link #close()}. */
    public int fd() {
        return fd;
    }

    /**
     * fallocate(2) of {@code fd} on the caller's thread: the blocks of the range allocated ({@code ALLOCATE}, growing
     * the file as needed), or, the size kept, freed ({@code PUNCH_HOLE}) or kept ({@code ZERO_RANGE}) as the range
     * reads as zeroes: returns 0, or -errno.
     */
    public static int fallocate(int fd, Fallocation mode, long offset, long length) {
        int flags = switch (mode) {
            case ALLOCATE -> 0;
            case PUNCH_HOLE -> LinuxCalls.PUNCH_HOLE;
            case ZERO_RANGE -> LinuxCalls.ZERO_RANGE;
        };
        return (int) LinuxCalls.blocking(IoUring.OP_FALLOCATE, fd, length, flags, offset);
    }

    /** What {@link #fallocate} does to a range. */
    public enum Fallocation {
        ALLOCATE, PUNCH_HOLE, ZERO_RANGE
    }

    /**
     * True if a request that failed with {@code result} (-errno) may simply be made again: EINTR, EAGAIN, and
     * ECANCELED, which the kernel returns when the thread that happened to submit the request for all (a carrier
     * the scheduler retired) exits before a kernel worker ran it.
     */
    public static boolean retryable(int result) {
        return result == -LinuxCalls.EINTR || result == -LinuxCalls.EAGAIN || result == -LinuxCalls.ECANCELED;
    }

    /** The C library's message for an errno value. */
    public static String message(int errno) {
        return LinuxCalls.strerror(errno);
    }

    @Override
    public void close() {
        LinuxCalls.close(fd);
    }
}
