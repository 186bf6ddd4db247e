package io.github.qcowloom.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * The raw positional I/O under {@link FileStorage}: a FileChannel ({@link ReopeningChannel}) or io_uring
 * (the Java 22+ layer's {@code UringFileIo}). Alignment, bounce buffers and the file's size are FileStorage's
 * business; an implementation only moves bytes, and is safe for concurrent use.
 */
interface FileIo extends Closeable {
    /** One positional read into {@code dst}, advancing its position; -1 or 0 at the end of the file. */
    int read(ByteBuffer dst, long position) throws IOException;

    /** One positional write from {@code src}, advancing its position; may write fewer bytes than remain. */
    int write(ByteBuffer src, long position) throws IOException;

    /** fdatasync. */
    void force() throws IOException;

    /**
     * fdatasync of {@code [position, position + length)} alone (vfs_fsync_range, see Storage#flushRange), the
     * range inside the file; the whole {@link #force()} where this I/O has no such call.
     */
    default void forceRange(long position, long length) throws IOException {
        force();
    }

    /**
     * ftruncate to {@code length}; false where this I/O leaves it to the caller (FileChannel cannot extend).
     */
    default boolean truncate(long length) throws IOException {
        return false;
    }

    /**
     * fallocate with mode 0: allocates {@code [position, position + length)} on the host, growing the file to its
     * end if shorter, without changing a byte; false where this I/O cannot (FileChannel has no fallocate).
     */
    default boolean allocate(long position, long length) throws IOException {
        return false;
    }

    /**
     * fallocate with PUNCH_HOLE | KEEP_SIZE: the range reads as zeroes and its blocks are freed; false where this
     * I/O cannot (FileChannel has no fallocate). Throws where the file system refuses it.
     */
    default boolean punchHole(long position, long length) throws IOException {
        return false;
    }

    /**
     * fallocate with ZERO_RANGE | KEEP_SIZE: the range reads as zeroes and keeps its blocks; false where this I/O
     * cannot (FileChannel has no fallocate). Throws where the file system refuses it.
     */
    default boolean zeroRange(long position, long length) throws IOException {
        return false;
    }
}
