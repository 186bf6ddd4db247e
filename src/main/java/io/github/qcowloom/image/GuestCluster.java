package io.github.qcowloom.image;

/** The index of a cluster of the virtual disk (guest offset >> cluster bits): what an L2 entry maps. */
record GuestCluster(long index) {
    long offset(int clusterBits) {
        return index << clusterBits;
    }

    GuestCluster next() {
        return new GuestCluster(index + 1);
    }
}
