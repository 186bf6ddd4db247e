package io.github.qcowloom.image;

import java.nio.ByteBuffer;

/**
 * One guest cluster made ready for {@link Qcow2Image#writeCompressed(CompressedCluster)}: its guest offset, the
 * caller's bytes (still needed when they did not shrink and go to disk as a normal cluster) and the compressed
 * stream, or none. Compressing needs no lock and does no I/O, so callers compress on many threads and write in the
 * order they choose. The caller's buffer must stay unchanged until the cluster is written.
 */
public final class CompressedCluster {
    private final long guestOffset;
    private final ByteBuffer data;
    private final byte[] compressed;
    /** The geometry and codec it was compressed for: it is written only into an image that has the same. */
    private final int clusterBits;
    private final int compressionType;

    CompressedCluster(long guestOffset, int clusterBits, int compressionType, ByteBuffer data, byte[] compressed) {
        this.guestOffset = guestOffset;
        this.clusterBits = clusterBits;
        this.compressionType = compressionType;
        this.data = data;
        this.compressed = compressed;
    }

    public long guestOffset() {
        return guestOffset;
    }

    /** False when compression did not shrink the cluster: it is written as a normal cluster. */
    public boolean shrank() {
        return compressed != null;
    }

    /** The guest bytes, as the caller gave them (unpadded). */
    ByteBuffer data() {
        return data.duplicate();
    }

    /** True if it was compressed for clusters of 2^{@code bits} bytes and the codec of compression_type {@code type}. */
    boolean fits(int bits, int type) {
        return clusterBits == bits && compressionType == type;
    }

    /** The compressed stream; null when it did not shrink. */
    byte[] compressed() {
        return compressed;
    }
}
