package io.github.qcowloom.image;

import io.github.qcowloom.alloc.RefcountCoverage;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.format.Limits;

/**
 * Where a new image's tables go, in QEMU's order: header, reftable, refblocks, L1, then (with metadata
 * preallocation) the L2 tables and the data clusters. The refcount structures must cover themselves
 * ({@link RefcountCoverage}).
 */
record CreateLayout(long clusterSize, long reftableClusters, long refblocks, long l1Entries, long l1Clusters,
        long l2Tables, long dataClusters) {

    static CreateLayout compute(long size, int clusterBits, int l2Bits, int refcountOrder, boolean preallocate,
            boolean dataInImageFile) throws ImageTooLargeException {
        long clusterSize = 1L << clusterBits;
        long l1Entries = Limits.sizeToL1(size, clusterBits, l2Bits);
        if (l1Entries < 0 || l1Entries * 8 > Limits.MAX_L1_BYTES) {
            throw new ImageTooLargeException("Image is too big: virtual size " + size);
        }
        // An empty disk has no L1 table at all (offset 0), as QEMU makes it.
        long l1Clusters = ceil(l1Entries * 8, clusterSize);
        long guestClusters = ceil(size, clusterSize);
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
        return new CreateLayout(clusterSize, reftableClusters, refblocks, l1Entries, l1Clusters, l2Tables,
                dataClusters);
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

    long l2Offset() {
        return l1Offset() + l1Clusters * clusterSize;
    }

    long dataOffset() {
        return l2Offset() + l2Tables * clusterSize;
    }

    /** Clusters in use in the image file, all with refcount 1. */
    long totalClusters() {
        return 1 + reftableClusters + refblocks + l1Clusters + l2Tables + dataClusters;
    }

    long fileLength() {
        return totalClusters() * clusterSize;
    }
}
