package io.github.qcowloom.format;

/**
 * An entry of a persistent bitmap's table (qcow2.rst, "Bitmap table"): the offset of one cluster of the bitmap's
 * bits, or 0 for a cluster whose bits are all zeroes, or all ones where bit 0 is set. QEMU's BME_TABLE_ENTRY_*.
 */
public final class BitmapTableEntry {
    private static final long OFFSET_MASK = 0x00fffffffffffe00L;
    private static final long RESERVED_MASK = 0xff000000000001feL;
    private static final long ALL_ONES = 1L;

    private BitmapTableEntry() {
    }

    /** The data cluster's offset; 0 if the entry has none. */
    public static long offset(long entry) {
        return entry & OFFSET_MASK;
    }

    /** True for an entry without a cluster whose bits are all set. */
    public static boolean allOnes(long entry) {
        return offset(entry) == 0 && (entry & ALL_ONES) != 0;
    }

    /**
     * QEMU's check_table_entry: no reserved bits, an offset at a cluster boundary, and the all-ones flag only
     * without an offset.
     */
    public static boolean valid(long entry, long clusterSize) {
        long offset = offset(entry);
        return (entry & RESERVED_MASK) == 0 && (offset & (clusterSize - 1)) == 0
                && (offset == 0 || (entry & ALL_ONES) == 0);
    }
}
