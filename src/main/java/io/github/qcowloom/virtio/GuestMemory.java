package io.github.qcowloom.virtio;

import java.nio.ByteBuffer;

/**
 * The guest's physical memory as the device sees it: a few regions at guest-physical addresses. Every access is
 * checked against the regions and throws {@link GuestMemoryException} for bytes outside them; nothing outside is
 * ever read or written. Multi-byte values are little-endian (virtio 1.x). Implementations are safe for concurrent
 * use by many threads (the guest writes the same memory meanwhile: callers order their accesses with fences).
 */
public interface GuestMemory {
    /**
     * A view of guest bytes from {@code address}, at most {@code length} long and inside one region (shorter where
     * the range runs into another region, whose bytes the next call returns). Its position is 0; writes through
     * it reach guest memory. Throws if {@code address} lies in no region or {@code length < 1}.
     */
    ByteBuffer slice(long address, long length);

    int read8(long address);

    /** The unsigned 16-bit value at {@code address}. */
    int readLe16(long address);

    int readLe32(long address);

    long readLe64(long address);

    void write8(long address, int value);

    /** Writes the low 16 bits of {@code value} in one store. */
    void writeLe16(long address, int value);

    void writeLe32(long address, int value);

    void writeLe64(long address, long value);

    /** True if {@code length} bytes from {@code address} all lie in the regions. */
    boolean contains(long address, long length);

    /** Copies {@code dst.remaining()} guest bytes from {@code address} into {@code dst}. */
    default void read(long address, ByteBuffer dst) {
        long at = address;
        while (dst.hasRemaining()) {
            ByteBuffer from = slice(at, dst.remaining());
            at += from.remaining();
            dst.put(from);
        }
    }

    /** Copies {@code src.remaining()} bytes into guest memory at {@code address}. */
    default void write(long address, ByteBuffer src) {
        long at = address;
        while (src.hasRemaining()) {
            ByteBuffer to = slice(at, src.remaining());
            at += to.remaining();
            ByteBuffer part = src.slice(src.position(), to.remaining());
            to.put(part);
            src.position(src.position() + part.capacity());
        }
    }
}
