package io.github.qcowloom.image;

import io.github.qcowloom.format.Header;

/** The sizes derived from a header that every request path needs, computed once. */
record ImageGeometry(int clusterBits, int l2Bits, int l2EntrySize, boolean extendedL2, boolean hasDataFile,
        int version) {
    static ImageGeometry of(Header h) {
        return new ImageGeometry(h.clusterBits(), h.l2Bits(), h.l2EntrySize(), h.extendedL2(), h.hasDataFile(),
                h.version());
    }

    long clusterSize() {
        return 1L << clusterBits;
    }

    long l2Entries() {
        return 1L << l2Bits;
    }

    /** The index of {@code cluster}'s entry in its L2 table, as QEMU's messages give it. */
    long l2Index(GuestCluster cluster) {
        return cluster.index() & (l2Entries() - 1);
    }

    int subclusterSize() {
        return (int) (clusterSize() >>> 5);
    }
}
