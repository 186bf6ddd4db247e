package io.github.qcowloom.image;

import io.github.qcowloom.api.MetadataCorruptionException;
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

    int subclusterSize() {
        return (int) (clusterSize() >>> 5);
    }

    /**
     * With an external data file a guest cluster lives at its own offset there: an entry pointing elsewhere is
     * corruption, as QEMU's qcow2_get_host_offset and handle_copied check. {@code guestCluster} is cluster-aligned.
     */
    void requireDataFileAtGuest(long host, long guestCluster) throws MetadataCorruptionException {
        if (hasDataFile && host != guestCluster) {
            throw new MetadataCorruptionException(String.format(
                    "External data file host cluster offset %#x does not match guest cluster offset: %#x", host,
                    guestCluster));
        }
    }
}
