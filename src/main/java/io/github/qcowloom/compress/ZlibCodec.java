package io.github.qcowloom.compress;

import io.github.qcowloom.api.CorruptImageException;
import java.nio.ByteBuffer;

/** Placeholder until the codec lands. */
final class ZlibCodec implements ClusterCodec {
    static final ZlibCodec INSTANCE = new ZlibCodec();

    @Override
    public void decompress(ByteBuffer src, ByteBuffer dst) throws CorruptImageException {
        throw new CorruptImageException("Zlib not implemented");
    }

    @Override
    public byte[] compress(ByteBuffer src) {
        return null;
    }

    @Override
    public int type() {
        return 0;
    }
}
