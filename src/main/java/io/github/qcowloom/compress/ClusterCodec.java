package io.github.qcowloom.compress;

import io.github.qcowloom.api.CorruptImageException;
import java.nio.ByteBuffer;

/**
 * Compresses and decompresses one guest cluster as QEMU stores it. Implementations are stateless and safe
 * for concurrent use.
 */
public interface ClusterCodec {
    /**
     * Decompresses one cluster. {@code src} holds the compressed bytes and may be followed by padding or by
     * the next cluster's bytes (qcow2 packs compressed clusters back to back and records their size only to
     * 512-byte precision). Fills {@code dst} exactly to its limit, leaving its position there; {@code src}'s
     * position is left unchanged.
     *
     * @throws CorruptImageException if the data is not a valid stream or does not fill {@code dst}
     */
    void decompress(ByteBuffer src, ByteBuffer dst) throws CorruptImageException;

    /**
     * Compresses {@code src} (one cluster). Returns the compressed bytes, or {@code null} when they would not
     * be smaller than the input, in which case QEMU (and we) store the cluster uncompressed. {@code src}'s
     * position is left unchanged.
     */
    byte[] compress(ByteBuffer src);

    /** The qcow2 header's compression_type value this codec implements (0 zlib, 1 zstd). */
    int type();

    /** The codec for a header compression_type value (0 zlib, 1 zstd). */
    static ClusterCodec forType(int compressionType) {
        return switch (compressionType) {
            case 0 -> ZlibCodec.INSTANCE;
            case 1 -> ZstdCodec.INSTANCE;
            default -> throw new IllegalArgumentException("compression type " + compressionType);
        };
    }
}
