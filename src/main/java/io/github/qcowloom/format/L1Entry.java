package io.github.qcowloom.format;

import io.github.qcowloom.api.MetadataCorruptionException;

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

    /**
     * The L2 table offset of {@code entry} (0 if it has none), checked as QEMU checks it before any use: an
     * offset that is not cluster-aligned is corruption (qcow2_signal_corruption).
     */
    public static long checkedL2Offset(long entry, long l1Index, long clusterSize)
            throws MetadataCorruptionException {
        long l2Offset = l2Offset(entry);
        if ((l2Offset & (clusterSize - 1)) != 0) {
            throw new MetadataCorruptionException(String.format("L2 table offset %#x unaligned (L1 index: %#x)",
                    l2Offset, l1Index));
        }
        return l2Offset;
    }

    public static boolean copied(long entry) {
        return (entry & COPIED) != 0;
    }

    public static long of(long l2Offset, boolean copied) {
        return (l2Offset & OFFSET_MASK) | (copied ? COPIED : 0);
    }

    /** The first {@code entries} entries of a table as stored (big-endian). */
    public static long[] decodeTable(byte[] table, int entries) {
        long[] l1 = new long[entries];
        for (int i = 0; i < entries; i++) {
            l1[i] = Bytes.getLong(table, i * 8);
        }
        return l1;
    }
}
