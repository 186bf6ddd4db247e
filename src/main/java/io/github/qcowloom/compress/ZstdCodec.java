package io.github.qcowloom.compress;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;
import com.github.luben.zstd.ZstdException;
import io.github.qcowloom.api.CorruptImageException;
import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.util.Arrays;

/** qcow2 compression_type 1: zstd frames, read one frame at a time as QEMU's streaming decoder does. */
final class ZstdCodec implements ClusterCodec {
    static final ZstdCodec INSTANCE = new ZstdCodec();

    /** zstd's default level, which QEMU's qcow2_zstd_compress uses by not setting one. */
    static final int LEVEL = 3;

    private ZstdCodec() {}

    /**
     * Like QEMU's qcow2_zstd_decompress: decodes whole frames until {@code dst} is full and fails if the input
     * ends first or a frame does not fit. The bytes after the last frame are the next cluster's, so each frame
     * is measured first: zstd's one-shot decoder would try to decode them too.
     */
    @Override
    public void decompress(ByteBuffer src, ByteBuffer dst) throws CorruptImageException {
        if (dst.isReadOnly()) {
            throw new ReadOnlyBufferException();
        }
        ByteBuffer in = src.isDirect() || src.hasArray() ? src : copyOf(src);
        int inPos = in.position();
        int outPos = dst.position();
        try (ZstdDecompressCtx ctx = new ZstdDecompressCtx()) {
            while (outPos < dst.limit()) {
                int inLeft = in.limit() - inPos;
                if (inLeft == 0) {
                    throw new CorruptImageException("zstd stream ended after " + (outPos - dst.position())
                            + " of " + dst.remaining() + " bytes of a compressed cluster");
                }
                int frame = frameSize(in, inPos, inLeft);
                // The output capacity is dst's free space, so a frame claiming more fails instead of allocating.
                outPos += decompressFrame(ctx, in, inPos, frame, dst, outPos, dst.limit() - outPos);
                inPos += frame;
            }
        } catch (ZstdException e) {
            throw new CorruptImageException("invalid zstd data in a compressed cluster: " + e.getMessage(), e);
        }
        dst.position(outPos);
    }

    private static int frameSize(ByteBuffer in, int pos, int length) {
        long size = in.isDirect()
                ? Zstd.findDirectByteBufferFrameCompressedSize(in, pos, length)
                : Zstd.findFrameCompressedSize(in.array(), in.arrayOffset() + pos, length);
        if (Zstd.isError(size)) {
            throw new ZstdException(size);
        }
        return (int) size;
    }

    private static int decompressFrame(
            ZstdDecompressCtx ctx, ByteBuffer in, int inPos, int inLen, ByteBuffer out, int outPos, int outLen) {
        if (in.isDirect()) {
            return out.isDirect()
                    ? ctx.decompressDirectByteBuffer(out, outPos, outLen, in, inPos, inLen)
                    : ctx.decompressDirectByteBufferToByteArray(
                            out.array(), out.arrayOffset() + outPos, outLen, in, inPos, inLen);
        }
        byte[] inArray = in.array();
        int inOffset = in.arrayOffset() + inPos;
        return out.isDirect()
                ? ctx.decompressByteArrayToDirectByteBuffer(out, outPos, outLen, inArray, inOffset, inLen)
                : ctx.decompressByteArray(out.array(), out.arrayOffset() + outPos, outLen, inArray, inOffset, inLen);
    }

    /** One frame, like QEMU's single ZSTD_compressStream2 call with ZSTD_e_end into cluster_size - 1 bytes. */
    @Override
    public byte[] compress(ByteBuffer src) {
        int length = src.remaining();
        if (length < 2) {
            return null;
        }
        ByteBuffer in = src.hasArray() ? src : copyOf(src);
        byte[] out = new byte[length - 1];
        int written;
        try (ZstdCompressCtx ctx = new ZstdCompressCtx()) {
            ctx.setLevel(LEVEL);
            written = ctx.compressByteArray(
                    out, 0, out.length, in.array(), in.arrayOffset() + in.position(), length);
        } catch (ZstdException e) {
            if (e.getErrorCode() == Zstd.errDstSizeTooSmall()) {
                return null;
            }
            throw e;
        }
        return Arrays.copyOf(out, written);
    }

    /** A heap copy of the remaining bytes, for buffers zstd-jni cannot take as they are. */
    private static ByteBuffer copyOf(ByteBuffer src) {
        byte[] copy = new byte[src.remaining()];
        src.get(src.position(), copy);
        return ByteBuffer.wrap(copy);
    }

    @Override
    public int type() {
        return 1;
    }
}
