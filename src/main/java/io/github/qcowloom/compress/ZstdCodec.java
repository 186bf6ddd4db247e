package io.github.qcowloom.compress;

import io.github.qcowloom.api.CorruptImageException;
import java.nio.ByteBuffer;

/** Placeholder until the codec lands. */
final class ZstdCodec implements ClusterCodec {
    static final ZstdCodec INSTANCE = new ZstdCodec();

    @Override
    public void decompress(ByteBuffer src, ByteBuffer dst) throws CorruptImageException {
        throw new CorruptImageException("Zstd not implemented");
    }

    @Override
    public byte[] compress(ByteBuffer src) {
        return null;
    }

    @Override
    public int type() {
        return 1;
    }
}
