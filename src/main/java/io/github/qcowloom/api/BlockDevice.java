package io.github.qcowloom.api;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A guest-visible disk: byte-addressed, blocking, thread-agnostic. Any number of threads may call it
 * at once; each call returns when its request is complete. Offsets and lengths are in bytes and must lie
 * inside {@link #size()}.
 */
public interface BlockDevice extends Closeable {
    /** Virtual size in bytes. */
    long size();

    /** Fills {@code dst} (position to limit) with the guest data at {@code offset}. */
    void read(long offset, ByteBuffer dst) throws IOException;

    /** Writes {@code src} (position to limit) at {@code offset}. Not durable until {@link #flush()}. */
    void write(long offset, ByteBuffer src) throws IOException;

    /** Hints that the range is no longer needed; it reads back as zeroes (or the backing file's data, where QEMU does so). */
    void discard(long offset, long length) throws IOException;

    /** Makes the range read as zeroes; with {@code mayUnmap} the host space may be released. */
    void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException;

    /**
     * {@link #writeZeroes} where it writes no zero bytes (QEMU's BDRV_REQ_NO_FALLBACK, NBD's FAST_ZERO): true once
     * the range reads as zeroes; false where zeroing it would write them, having written none (a part of the range
     * may read as zeroes already, as QEMU leaves it). False by default.
     */
    default boolean writeZeroesFast(long offset, long length, boolean mayUnmap) throws IOException {
        checkRange(offset, length, "fast zero write");
        if (readOnly()) {
            throw new ReadOnlyImageException("the device is read-only");
        }
        return false;
    }

    /** The most bytes {@link #prefetch} holds at a time: one cluster of the largest size qcow2 allows. */
    int PREFETCH_BUFFER_BYTES = 2 << 20;

    /**
     * Tells the device that the range will be read soon (NBD_CMD_CACHE). A hint: nothing by default; a qcow2 image
     * copies into itself what its backing chain holds there (QEMU's copy-on-read prefetch, as qemu-nbd serves the
     * command). Holds at most {@link #PREFETCH_BUFFER_BYTES} at a time.
     */
    default void prefetch(long offset, long length) throws IOException {
        checkRange(offset, length, "prefetch");
    }

    /** Makes every write completed before this call durable. */
    void flush() throws IOException;

    /** Changes the virtual size. */
    void resize(long newSize) throws IOException;

    /**
     * Changes the virtual size, the space a growth adds preallocated as {@code mode} says, as QEMU's truncate with
     * a preallocation mode does: refused with any mode but {@code OFF} for a shrink, and, by default, for a growth
     * (a device that can preallocate says so by overriding this).
     */
    default void resize(long newSize, Preallocation mode) throws IOException {
        if (mode != Preallocation.OFF) {
            throw new UnsupportedFeatureException("preallocation=" + mode.qemuName(),
                    "Unsupported preallocation mode: " + mode.qemuName());
        }
        resize(newSize);
    }

    /** True if the device refuses writes. */
    boolean readOnly();

    /**
     * How the bytes from {@code offset} are stored, without reading them (QEMU's block status): the status of the
     * first byte and how far it extends, at most {@code length} bytes. A device that keeps no allocation map
     * reports the whole range as data at an unknown place.
     */
    default BlockStatus blockStatus(long offset, long length) throws IOException {
        if (length <= 0) {
            throw new OutOfRangeException("block status of " + length + " bytes at offset " + offset);
        }
        checkRange(offset, length, "block status");
        return new BlockStatus(length, 0, BlockStatus.Allocation.DATA, null);
    }

    /** Throws {@link OutOfRangeException} unless {@code [offset, offset + length)} lies inside the device. */
    private void checkRange(long offset, long length, String what) throws IOException {
        if (offset < 0 || length < 0 || offset > size() - length) {
            throw new OutOfRangeException(what + " of " + length + " bytes at offset " + offset
                    + " is outside the device of " + size() + " bytes");
        }
    }

    /** The host file that holds the device (a qcow2 image's own file, a raw file), or null where there is none. */
    default java.nio.file.Path path() {
        return null;
    }

    @Override
    void close() throws IOException;
}
