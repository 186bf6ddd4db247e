package io.github.qcowloom.crashkit;

import java.util.Arrays;
import java.util.Random;

/**
 * The bytes of a crash state being built: a file of {@link #size()} bytes in one array, allocated once at the
 * largest size the file reaches while the state's operations are replayed, so that building a state copies the
 * durable image once. Bytes past the size are always zero, so a file that grows reads zeroes there.
 */
final class StateImage {
    private final byte[] data;
    private int size;

    /** The file {@code durable}, with room for {@code capacity} bytes (at least its length). */
    StateImage(byte[] durable, long capacity) {
        if (capacity < durable.length || capacity > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("capacity " + capacity + " for a file of " + durable.length);
        }
        this.data = Arrays.copyOf(durable, (int) capacity);
        this.size = durable.length;
    }

    long size() {
        return size;
    }

    void write(long offset, byte[] bytes) {
        System.arraycopy(bytes, 0, data, (int) offset, bytes.length);
        size = (int) Math.max(size, offset + bytes.length);
    }

    void zero(long offset, long length) {
        Arrays.fill(data, (int) offset, (int) (offset + length), (byte) 0);
        size = (int) Math.max(size, offset + length);
    }

    /** {@code length} bytes of garbage at {@code offset} (torn mode). */
    void garbage(long offset, long length, Random garbage) {
        byte[] junk = new byte[(int) length];
        garbage.nextBytes(junk);
        write(offset, junk);
    }

    void setLength(long length) {
        if (length < size) {
            Arrays.fill(data, (int) length, size, (byte) 0);
        }
        size = (int) length;
    }

    /** The file's bytes; the array itself when it is exactly full. */
    byte[] toArray() {
        return size == data.length ? data : Arrays.copyOf(data, size);
    }
}
