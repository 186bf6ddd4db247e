package io.github.qcowloom.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * A host file: positional reads and writes, durable only after {@link #flush()}. Implementations are safe
 * for concurrent use by any number of threads and never hold an intrinsic monitor lock (it pins virtual threads
 * on JDK 21).
 */
public interface Storage extends Closeable {
    /**
     * Reads into {@code dst} from {@code position} until {@code dst} is full or the end of the file.
     * Returns the number of bytes read from the file (0 at or past the end); advances {@code dst}'s position
     * by that many bytes.
     */
    int read(ByteBuffer dst, long position) throws IOException;

    /**
     * Writes all of {@code src} at {@code position}, extending the file if needed (an empty {@code src} changes
     * nothing); advances {@code src}'s position to its limit.
     */
    void write(ByteBuffer src, long position) throws IOException;

    /**
     * Makes every completed write durable (fdatasync). A storage whose failed sync may have dropped writes (a host
     * file through the page cache) fails every later flush too, rather than report them durable.
     */
    void flush() throws IOException;

    /**
     * Makes the completed writes inside {@code [position, position + length)} durable, with the file's size as far
     * as the range reaches; writes outside it may stay volatile. This is what one metadata write ordered before
     * another needs: {@link #flush()} would also write back all the guest data the page cache holds, which the
     * ordering does not depend on (a new L2 table waited 0.1-0.6 s for hundreds of MiB of it, {@code bench -w -s
     * 64k}: half of the run). Linux's vfs_fsync_range; where a storage has no such call, the whole
     * {@link #flush()} (the default).
     */
    default void flushRange(long position, long length) throws IOException {
        flush();
    }

    /** Writes all of {@code src} at {@code position} and makes that range durable ({@link #flushRange}). */
    default void writeDurably(ByteBuffer src, long position) throws IOException {
        int length = src.remaining();
        write(src, position);
        flushRange(position, length);
    }

    /**
     * Releases the host space of the range; it then reads as zeroes. Best effort where the host cannot. The
     * size never changes: the part of the range past the end of the file is ignored.
     */
    void punchHole(long position, long length) throws IOException;

    /**
     * The range's bytes no longer matter (clusters the image has freed): its host space is released where the host
     * can do that cheaply, and otherwise nothing happens (QEMU's bdrv_pdiscard). Returns true if the part of the
     * range inside the file now reads as zeroes; false if some of it may read as before. Nothing by default.
     */
    default boolean discard(long position, long length) throws IOException {
        return false;
    }

    /**
     * Makes the range read as zeroes by writing them, so that it stays allocated (as QEMU's full preallocation
     * writes them); extends the file if the range reaches past its end. {@link #zeroRange} is the cheap way.
     */
    void writeZeroes(long position, long length) throws IOException;

    /**
     * Makes a range inside the file read as zeroes without writing them, as QEMU's raw write-zeroes asks the host:
     * a hole punched with {@code unmap}, else fallocate(ZERO_RANGE), which keeps the space. True once done, the
     * range ordered against overlapping writes as a write of it is; false, having changed nothing, where the host
     * cannot (the default) or the range reaches past the end of the file.
     */
    default boolean zeroRange(long position, long length, boolean unmap) throws IOException {
        return false;
    }

    /**
     * A hole punched where {@code unmap} allows it and the host can, else ZERO_RANGE: {@link #zeroRange} as QEMU's
     * zero write that may unmap falls back (handle_aiocb_write_zeroes_unmap). False, having changed nothing, where
     * neither can be had.
     */
    default boolean zeroWithoutWriting(long position, long length, boolean unmap) throws IOException {
        return unmap && zeroRange(position, length, true) || zeroRange(position, length, false);
    }

    /** Zeroes the range and keeps its space: {@link #zeroRange} where the host can, else zeroes written. */
    default void zeroKeepingSpace(long position, long length) throws IOException {
        if (!zeroRange(position, length, false)) {
            writeZeroes(position, length);
        }
    }

    /**
     * Allocates the range on the host where that makes later writes into it cheaper, growing the file to the
     * range's end; the new space reads as zeroes and no byte inside the file changes. Does nothing where it would
     * not pay or the host cannot (the default).
     */
    default void preallocate(long position, long length) throws IOException {
    }

    /**
     * QEMU's preallocation=falloc of a range that has never been written (a hole, or past the end of the file):
     * reserves its host space, growing the file to its end, and it reads as zeroes. Unlike {@link #preallocate},
     * never skipped: where the host cannot reserve space, zeroes are written (the default).
     */
    default void reserve(long position, long length) throws IOException {
        writeZeroes(position, length);
    }

    /** Current length of the file in bytes. */
    long size() throws IOException;

    /**
     * The host file's path, for what only its file system can tell (where it has holes, how many blocks it
     * occupies); null where the storage is no host file, or holds bytes the file does not (a simulation).
     */
    default Path path() {
        return null;
    }

    /** Truncates or extends the file; extended space reads as zeroes. */
    void setLength(long length) throws IOException;

    /**
     * Extends the file to {@code end} bytes if it is shorter, atomically with respect to concurrent writes (a
     * write that has already extended the file further is never cut); the new space reads as zeroes.
     */
    void extendTo(long end) throws IOException;

    /**
     * The alignment in bytes that offsets, lengths and direct buffers should respect for the fastest I/O (1 if
     * any). Misaligned requests still work, through copies.
     */
    int alignment();

    /** True if writes are refused. */
    boolean readOnly();

    /**
     * True if a read waits for a device rather than copying from memory (O_DIRECT; a simulated device): where the
     * independent parts of one request are worth making side by side ({@code image.PartTasks}). Through the page
     * cache a read is a copy, which the request's own thread makes as fast as helpers would.
     */
    default boolean waitsForDevice() {
        return false;
    }

    /**
     * The driver announces that {@code event} is about to happen, so that a fault-injecting storage (crashkit's
     * FaultStorage, in QEMU's blkdebug spirit) can fail the I/O that follows. Other storages ignore it; wrappers
     * forward it.
     */
    default void event(StorageEvent event) {
    }

    /** Reads exactly {@code dst.remaining()} bytes; bytes past the end of the file read as zeroes. */
    default void readFully(ByteBuffer dst, long position) throws IOException {
        int n = read(dst, position);
        Zeroes.fill(dst);
        assert n >= 0;
    }
}
