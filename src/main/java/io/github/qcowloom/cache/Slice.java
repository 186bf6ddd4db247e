package io.github.qcowloom.cache;

import io.github.qcowloom.format.Bytes;

/**
 * One cached piece of an on-disk table (L2 table or refcount block): its host offset, its bytes, and a version
 * that every change bumps, so that write-back knows whether a slice changed again after it was copied.
 */
public final class Slice {
    private final long offset;
    private final byte[] data;
    private volatile long version;
    private volatile long cleanVersion;

    Slice(long offset, byte[] data) {
        this.offset = offset;
        this.data = data;
    }

    /** Host offset of the slice's first byte. */
    public long offset() {
        return offset;
    }

    /**
     * The slice's bytes; callers mutating them hold the image's metadata lock and the slice's pin
     * ({@link TableCache#pin}, or a slice just {@link TableCache#create created} and not yet written), and then call
     * {@link #markDirty} before they unpin it.
     */
    public byte[] data() {
        return data;
    }

    /** The 64-bit big-endian entry at byte offset {@code byteOffset} within the slice. */
    public long getLong(int byteOffset) {
        return Bytes.getLong(data, byteOffset);
    }

    /** Stores an entry and marks the slice dirty; the caller holds the metadata lock. */
    public void setLong(int byteOffset, long value) {
        Bytes.putLong(data, byteOffset, value);
        markDirty();
    }

    /** Records a change made through {@link #data()}; the caller holds the metadata lock. */
    public void markDirty() {
        version++;
    }

    public boolean dirty() {
        return version != cleanVersion;
    }

    long version() {
        return version;
    }

    /** The slice is on disk as it was at {@code writtenVersion}; clean unless it changed since. */
    void markWritten(long writtenVersion) {
        if (cleanVersion < writtenVersion) {
            cleanVersion = writtenVersion;
        }
    }
}
