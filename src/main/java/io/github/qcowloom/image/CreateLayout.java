package io.github.qcowloom.image;

import io.github.qcowloom.alloc.RefcountCoverage;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.format.Limits;

/**
 * Where a new image's tables go, in QEMU's order: header, reftable, refblocks, L1, then (with metadata
 * preallocation) each L2 table followed by the data clusters it maps, as qemu-img's preallocation allocates them
 * table by table. The refcount structures must cover themselves ({@link RefcountCoverage}); QEMU places them so too
 * as long as one refcount block covers everything, and allocates further blocks among the data as it goes, which
 * this layout does not follow.
 */
record CreateLayout(long size, long clusterSize, long reftableClusters, long refblocks, long l1Entries,
        long l1Clusters, long l2Entries, long l2Tables, long dataClusters, long preallocationUnit) {

    /**
     * @param preallocationUnit 0 without preallocation; else what QEMU rounds the preallocated end of the disk up
     *     to: a subcluster with extended L2, else a cluster
     */
    static CreateLayout compute(long size, int clusterBits, int l2Bits, int refcountOrder, long preallocationUnit,
            boolean dataInImageFile) throws ImageTooLargeException {
        long clusterSize = 1L << clusterBits;
        long l1Entries = Limits.sizeToL1(size, clusterBits, l2Bits);
        if (l1Entries < 0 || l1Entries * 8 > Limits.MAX_L1_BYTES) {
            throw new ImageTooLargeException("The image size is too large for file format 'qcow2' (try using a larger "
                    + "cluster size)"); // qemu-img's words
        }
        // An empty disk has no L1 table at all (offset 0), as QEMU makes it.
        long l1Clusters = ceil(l1Entries * 8, clusterSize);
        long guestClusters = ceil(size, clusterSize);
        boolean preallocate = preallocationUnit != 0;
        long l2Tables = preallocate ? ceil(guestClusters, 1L << l2Bits) : 0;
        long dataClusters = preallocate && dataInImageFile ? guestClusters : 0;
        RefcountCoverage coverage = RefcountCoverage.of(1 + l1Clusters + l2Tables + dataClusters,
                clusterSize * 8 >>> refcountOrder, clusterSize);
        long refblocks = coverage.refblocks();
        long reftableClusters = coverage.reftableClusters();
        if (reftableClusters * clusterSize > Limits.MAX_REFTABLE_BYTES) {
            throw new ImageTooLargeException("Image is too big: its refcount table would exceed "
                    + Limits.MAX_REFTABLE_BYTES + " bytes");
        }
        return new CreateLayout(size, clusterSize, reftableClusters, refblocks, l1Entries, l1Clusters,
                1L << l2Bits, l2Tables, dataClusters, preallocationUnit);
    }

    private static long ceil(long a, long b) {
        return a / b + (a % b == 0 ? 0 : 1);
    }

    long reftableOffset() {
        return clusterSize;
    }

    long refblocksOffset() {
        return reftableOffset() + reftableClusters * clusterSize;
    }

    long l1Offset() {
        return refblocksOffset() + refblocks * clusterSize;
    }

    /** L2 table {@code table}: after the L1 table, each followed by its data clusters when they are in the file. */
    long l2Offset(long table) {
        long stride = dataClusters == 0 ? 1 : 1 + l2Entries;
        return l1Offset() + (l1Clusters + table * stride) * clusterSize;
    }

    /** The preallocated host cluster of guest cluster {@code cluster}, right after its L2 table and the ones before. */
    long dataOffset(long cluster) {
        return l2Offset(cluster / l2Entries) + (1 + cluster % l2Entries) * clusterSize;
    }

    /** Clusters in use in the image file, all with refcount 1. */
    long totalClusters() {
        return 1 + reftableClusters + refblocks + l1Clusters + l2Tables + dataClusters;
    }

    /**
     * How long qemu-img leaves the image file: the L1 table ends it (written to its last entry, not to the cluster's
     * end) unless preallocation adds L2 tables; preallocated data ends it at the disk's end rounded up to the
     * preallocation unit, so the last data cluster may lie in the file only in part.
     */
    long fileLength() {
        if (dataClusters > 0) {
            long last = dataClusters - 1;
            return dataOffset(last) + roundUp(size - last * clusterSize, preallocationUnit);
        }
        if (l2Tables > 0) {
            return l2Offset(l2Tables - 1) + clusterSize;
        }
        if (l1Entries > 0) {
            return l1Offset() + l1Entries * 8;
        }
        return l1Offset();
    }

    /**
     * How long qemu-img leaves an external data file: the virtual size, and with preallocation (which a raw data
     * file implies) at least up to the disk's end rounded up to the preallocation unit.
     */
    long dataFileLength() {
        return preallocationUnit == 0 ? size : roundUp(size, preallocationUnit);
    }

    private static long roundUp(long n, long unit) {
        return ceil(n, unit) * unit;
    }
}
