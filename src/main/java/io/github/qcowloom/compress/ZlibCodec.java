package io.github.qcowloom.compress;

import io.github.qcowloom.api.CorruptImageException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/** qcow2 compression_type 0: raw deflate that QEMU's 4 KiB-window inflater (window bits -12) can read. */
final class ZlibCodec implements ClusterCodec {
    static final ZlibCodec INSTANCE = new ZlibCodec();

    /**
     * QEMU inflates with a 4 KiB window, but the JDK deflater uses 32 KiB. A full flush resets the
     * deflater's dictionary, so flushing after every 4 KiB of input keeps every back-reference in range.
     */
    static final int WINDOW = 4096;

    /**
     * Inflaters kept for reuse (reset between clusters): a new one per cluster costs a zlib state and window
     * allocated and freed natively each time, which under many threads grows the C heap. At most this many are kept;
     * more in use at once are made and ended as before.
     */
    private static final int POOLED = 32;
    private final ArrayBlockingQueue<Inflater> inflaters = new ArrayBlockingQueue<>(POOLED);

    private ZlibCodec() {}

    /**
     * Like QEMU's qcow2_zlib_decompress: succeeds once {@code dst} is full, whether or not the stream ends
     * there, and ignores whatever follows the stream in {@code src}.
     */
    @Override
    public void decompress(ByteBuffer src, ByteBuffer dst) throws CorruptImageException {
        int wanted = dst.remaining();
        Inflater pooled = inflaters.poll();
        Inflater inflater = pooled != null ? pooled : new Inflater(true);
        boolean reusable = false;
        try {
            inflater.setInput(src.duplicate());
            while (dst.hasRemaining()) {
                long readBefore = inflater.getBytesRead();
                // No output and no input taken: the stream ended, the input ran out, or nothing can move.
                if (inflater.inflate(dst) == 0 && inflater.getBytesRead() == readBefore) {
                    throw new CorruptImageException("zlib stream ended after " + (wanted - dst.remaining())
                            + " of " + wanted + " bytes of a compressed cluster");
                }
            }
            reusable = true;
        } catch (DataFormatException e) {
            throw new CorruptImageException("invalid zlib stream in a compressed cluster: " + e.getMessage(), e);
        } finally {
            if (reusable) {
                inflater.reset();
            }
            if (!reusable || !inflaters.offer(inflater)) {
                inflater.end();
            }
        }
    }

    /** Returns null when the stream would not fit in {@code src.remaining() - 1} bytes (QEMU's limit). */
    @Override
    public byte[] compress(ByteBuffer src) {
        int length = src.remaining();
        if (length < 2) {
            return null;
        }
        byte[] out = new byte[length - 1];
        int written = 0;
        Deflater deflater = new Deflater(Deflater.DEFAULT_COMPRESSION, true);
        try {
            for (int start = 0; start < length; start += WINDOW) {
                int chunk = Math.min(WINDOW, length - start);
                deflater.setInput(src.slice(src.position() + start, chunk));
                boolean last = start + chunk == length;
                if (last) {
                    deflater.finish();
                }
                // Deflate until the chunk is flushed (a call that leaves output space unused) or finished.
                while (true) {
                    int space = out.length - written;
                    if (space == 0) {
                        return null;
                    }
                    int n = deflater.deflate(out, written, space, last ? Deflater.NO_FLUSH : Deflater.FULL_FLUSH);
                    written += n;
                    if (last ? deflater.finished() : n < space) {
                        break;
                    }
                }
            }
        } finally {
            deflater.end();
        }
        return Arrays.copyOf(out, written);
    }

    @Override
    public int type() {
        return 0;
    }
}
