package io.github.qcowloom.format;

/**
 * Reads and writes refcount entries of 1 to 64 bits in a refcount block. Sub-byte entries put entry 0 in the
 * least significant bits of byte 0; wider entries are big-endian.
 */
public final class RefcountCodec {
    private final int order;
    private final int bits;
    private final long max;

    public RefcountCodec(int refcountOrder) {
        if (refcountOrder < 0 || refcountOrder > Limits.MAX_REFCOUNT_ORDER) {
            throw new IllegalArgumentException("refcount order " + refcountOrder);
        }
        this.order = refcountOrder;
        this.bits = 1 << refcountOrder;
        this.max = bits == 64 ? -1L : (1L << bits) - 1;
    }

    public int bits() {
        return bits;
    }

    /** The largest refcount this width holds; for 64 bits, -1 (all ones, compare unsigned). */
    public long max() {
        return max;
    }

    /** Entries in a refcount block of {@code clusterSize} bytes. */
    public long entriesPerBlock(long clusterSize) {
        return clusterSize * 8 >>> order;
    }

    public long get(byte[] block, int index) {
        return switch (order) {
            case 0, 1, 2 -> {
                long bitPos = (long) index << order;
                int b = block[(int) (bitPos >>> 3)] & 0xff;
                yield (b >>> (bitPos & 7)) & max;
            }
            case 3 -> block[index] & 0xffL;
            case 4 -> Bytes.getUShort(block, index * 2);
            case 5 -> Bytes.getUInt(block, index * 4);
            default -> Bytes.getLong(block, index * 8);
        };
    }

    /** Stores {@code value}, which must be between 0 and {@link #max()} (unsigned). */
    public void set(byte[] block, int index, long value) {
        if (bits < 64 && (value < 0 || value > max)) {
            throw new IllegalArgumentException("refcount " + value + " exceeds " + bits + " bits");
        }
        switch (order) {
            case 0, 1, 2 -> {
                long bitPos = (long) index << order;
                int byteIndex = (int) (bitPos >>> 3);
                int shift = (int) (bitPos & 7);
                int b = block[byteIndex] & 0xff;
                b = (b & ~((int) max << shift)) | ((int) value << shift);
                block[byteIndex] = (byte) b;
            }
            case 3 -> block[index] = (byte) value;
            case 4 -> Bytes.putShort(block, index * 2, (int) value);
            case 5 -> Bytes.putInt(block, index * 4, (int) value);
            default -> Bytes.putLong(block, index * 8, value);
        }
    }
}
