package io.github.qcowloom.nbd;

import java.nio.ByteBuffer;

/**
 * The client's side of the connection: its bytes to read, then the end of the stream; writes are dropped and
 * counted.
 */
final class ClientBytes implements ByteStream {
    private final ByteBuffer in;
    private boolean open = true;
    private long written;

    ClientBytes(byte[] data) {
        in = ByteBuffer.wrap(data);
    }

    @Override
    public int read(ByteBuffer dst) {
        if (!in.hasRemaining()) {
            return -1;
        }
        int n = Math.min(dst.remaining(), in.remaining());
        dst.put(in.slice(in.position(), n));
        in.position(in.position() + n);
        return n;
    }

    @Override
    public int write(ByteBuffer src) {
        int n = src.remaining();
        src.position(src.limit());
        written += n;
        return n;
    }

    /** The bytes the server has written (its replies). */
    long written() {
        return written;
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) {
        long n = 0;
        for (int i = offset; i < offset + length; i++) {
            n += write(srcs[i]);
        }
        return n;
    }

    @Override
    public long write(ByteBuffer[] srcs) {
        return write(srcs, 0, srcs.length);
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    @Override
    public void close() {
        open = false;
    }
}
