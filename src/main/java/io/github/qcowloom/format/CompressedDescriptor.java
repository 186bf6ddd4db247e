package io.github.qcowloom.format;

/**
 * Where a compressed cluster's bytes lie: a host byte offset and a length known only to 512-byte sectors
 * (QEMU's qcow2_parse_compressed_l2_entry).
 */
public record CompressedDescriptor(long hostOffset, int sectors) {
    public static final int SECTOR = 512;

    /** Bit position of the sector count: 62 - (cluster_bits - 8). */
    public static int sizeShift(int clusterBits) {
        return 62 - (clusterBits - 8);
    }

    public static CompressedDescriptor decode(long entry, int clusterBits) {
        int shift = sizeShift(clusterBits);
        long offset = entry & ((1L << shift) - 1);
        int sectors = (int) ((entry >>> shift) & ((1L << (clusterBits - 8)) - 1)) + 1;
        return new CompressedDescriptor(offset, sectors);
    }

    /** Bytes to read: whole sectors from the offset's sector, less the part before the offset. */
    public int length() {
        return sectors * SECTOR - (int) (hostOffset & (SECTOR - 1));
    }

    /** The host cluster offsets this entry's bytes touch (first and last), for refcounting. */
    public long firstHostCluster(int clusterBits) {
        return hostOffset >>> clusterBits;
    }

    public long lastHostCluster(int clusterBits) {
        return (hostOffset + length() - 1) >>> clusterBits;
    }

    /**
     * The L2 entry for compressed data of {@code bytes} bytes at {@code hostOffset}, with the COMPRESSED flag.
     * The sector count covers [offset, offset + bytes) as QEMU's qcow2_alloc_compressed_cluster_offset computes it.
     */
    public static long encode(long hostOffset, int bytes, int clusterBits) {
        int shift = sizeShift(clusterBits);
        long sectors = ((hostOffset + bytes - 1) / SECTOR) - (hostOffset / SECTOR) + 1;
        if (sectors > (1L << (clusterBits - 8))) {
            throw new IllegalArgumentException("compressed data larger than a cluster: " + bytes);
        }
        if (hostOffset >= (1L << shift)) {
            throw new IllegalArgumentException("compressed offset beyond the descriptor's range: " + hostOffset);
        }
        return L2Entry.COMPRESSED | ((sectors - 1) << shift) | hostOffset;
    }
}
