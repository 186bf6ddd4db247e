package io.github.qcowloom.cache;

import io.github.qcowloom.format.Bytes;

/** One cached piece of an on-disk table (L2 table or refcount block): its host offset and its bytes. */
public final class Slice {
    private final long offset;
    private final byte[] data;

    Slice(long offset, byte[] data) {
        this.offset = offset;
        this.data = data;
    }

    /** Host offset of the slice's first byte. */
    public long offset() {
        return offset;
    }

    /** The slice's bytes; callers mutating them must hold the lock that protects the table. */
    public byte[] data() {
        return data;
    }

    /** The 64-bit big-endian entry at byte offset {@code byteOffset} within the slice. */
    public long getLong(int byteOffset) {
        return Bytes.getLong(data, byteOffset);
    }
}
