package io.github.qcowloom.format;

/** Codec of an L1 entry: the offset of an L2 table plus the COPIED flag. */
public final class L1Entry {
    private L1Entry() {
    }

    public static final long OFFSET_MASK = 0x00fffffffffffe00L;
    public static final long COPIED = 1L << 63;
    /** Bits that must be zero; masked during I/O and reported only by check. */
    public static final long RESERVED_MASK = 0x7f000000000001ffL;

    public static long l2Offset(long entry) {
        return entry & OFFSET_MASK;
    }

    public static boolean copied(long entry) {
        return (entry & COPIED) != 0;
    }

    public static long of(long l2Offset, boolean copied) {
        return (l2Offset & OFFSET_MASK) | (copied ? COPIED : 0);
    }
}
