package io.github.qcowloom.compress;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/** Just enough of a qcow2 reader (header, L1, L2, compressed descriptors) to find compressed clusters. */
record CompressedClusters(int clusterBits, int compressionType, List<Cluster> clusters) {
    private static final long L1_OFFSET_MASK = 0x00fffffffffffe00L;
    private static final long COMPRESSED = 1L << 62;

    /** One compressed guest cluster: where its L2 entry is, and the host byte range its descriptor names. */
    record Cluster(long guestIndex, int l2EntryPosition, long hostOffset, int size) {}

    static CompressedClusters of(byte[] image) {
        ByteBuffer b = ByteBuffer.wrap(image);
        assertEquals(0x514649fb, b.getInt(0), "qcow2 magic");
        int clusterBits = b.getInt(20);
        int l1Size = b.getInt(36);
        long l1Offset = b.getLong(40);
        int compressionType = b.getInt(4) >= 3 && b.getInt(100) > 104 ? b.get(104) : 0;

        int entriesPerL2 = 1 << (clusterBits - 3);
        int offsetBits = 62 - (clusterBits - 8);
        List<Cluster> clusters = new ArrayList<>();
        for (int i = 0; i < l1Size; i++) {
            long l2Offset = b.getLong(Math.toIntExact(l1Offset + 8L * i)) & L1_OFFSET_MASK;
            for (int j = 0; l2Offset != 0 && j < entriesPerL2; j++) {
                int position = Math.toIntExact(l2Offset + 8L * j);
                long entry = b.getLong(position);
                if ((entry & COMPRESSED) == 0) {
                    continue;
                }
                long offset = entry & ((1L << offsetBits) - 1);
                long sectors = ((entry >>> offsetBits) & ((1L << (clusterBits - 8)) - 1)) + 1;
                int size = (int) (sectors * 512 - (offset & 511));
                clusters.add(new Cluster((long) i * entriesPerL2 + j, position, offset, size));
            }
        }
        return new CompressedClusters(clusterBits, compressionType, clusters);
    }

    /**
     * The L2 entry for {@code length} compressed bytes at {@code offset}, counting sectors as QEMU's
     * qcow2_alloc_compressed_cluster_offset does: the sectors after the one holding the first byte.
     */
    long descriptor(long offset, int length) {
        int offsetBits = 62 - (clusterBits - 8);
        long additionalSectors = ((offset + length - 1) >> 9) - (offset >> 9);
        return COMPRESSED | (additionalSectors << offsetBits) | offset;
    }
}
