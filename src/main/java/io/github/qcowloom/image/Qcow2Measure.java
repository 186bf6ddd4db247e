package io.github.qcowloom.image;

/**
 * The sizes qemu-img measure gives a new qcow2 image, by QEMU's own formulas (qcow2_calc_prealloc_size and
 * qcow2_refcount_metadata_size): a header cluster, every L2 table and the L1 table of a fully allocated disk, the
 * refcount structures that count all of it, and the data. These are estimates of QEMU's (the refcount fixed point
 * differs from where {@link CreateLayout} puts a new image's structures), so they are kept apart from it.
 */
public final class Qcow2Measure {
    private Qcow2Measure() {
    }

    /**
     * The file size of the image fully allocated, metadata included: {@code virtualSize} rounded up to a cluster,
     * plus the header, L2 and L1 tables and refcount structures.
     */
    public static long fullyAllocated(long virtualSize, long clusterSize, int refcountOrder, boolean extendedL2) {
        long alignedTotal = roundUp(virtualSize, clusterSize); // the caller's size is rounded already, as QEMU's
        long l2EntrySize = extendedL2 ? 16 : 8;
        long meta = clusterSize; // the header
        long l2Entries = roundUp(alignedTotal / clusterSize, clusterSize / l2EntrySize);
        meta += l2Entries * l2EntrySize;
        long l1Entries = roundUp(l2Entries * l2EntrySize / clusterSize, clusterSize / 8);
        meta += l1Entries * 8;
        meta += refcountMetadataSize((meta + alignedTotal) / clusterSize, clusterSize, refcountOrder);
        return meta + alignedTotal;
    }

    /**
     * Bytes of refcount blocks and table to count {@code clusters} clusters and themselves: QEMU's fixed point,
     * started from none of either.
     */
    static long refcountMetadataSize(long clusters, long clusterSize, int refcountOrder) {
        long blocksPerTableCluster = clusterSize / 8;
        long refcountsPerBlock = clusterSize * 8 / (1L << refcountOrder);
        long table = 0;
        long blocks = 0;
        long n = 0;
        long last;
        do {
            last = n;
            blocks = ceilDiv(clusters + table + blocks, refcountsPerBlock);
            table = ceilDiv(blocks, blocksPerTableCluster);
            n = clusters + blocks + table;
        } while (n != last);
        return (blocks + table) * clusterSize;
    }

    /** QEMU's check of a measured size: its L1 table may not exceed 32 MiB (QCOW_MAX_L1_SIZE). */
    public static boolean fits(long virtualSize, long clusterSize, boolean extendedL2) {
        long l2Tables = ceilDiv(Long.divideUnsigned(virtualSize, clusterSize), clusterSize / (extendedL2 ? 16 : 8));
        return l2Tables <= (32L << 20) / 8;
    }

    private static long roundUp(long v, long unit) {
        return ceilDiv(v, unit) * unit;
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }
}
