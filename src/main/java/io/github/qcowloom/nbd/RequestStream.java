package io.github.qcowloom.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;

/**
 * The transmission phase's incoming bytes, read ahead into one buffer: a client with many requests in flight sends
 * them in bursts, and a burst of headers is read with one system call rather than one each (on a virtual thread,
 * a read that finds the socket empty also costs a poller registration and a wake-up). Large WRITE payloads are
 * read straight into their own buffers past what is already here. Holds at most {@link #SIZE} bytes the client has
 * sent ahead, beyond what the connection's budget counts. Used by the connection's one reading thread only.
 */
final class RequestStream {
    static final int SIZE = 64 << 10;

    private final ReadableByteChannel ch;
    private final ByteBuffer ahead = ByteBuffer.allocateDirect(SIZE).flip(); // unread bytes: position to limit

    RequestStream(ReadableByteChannel ch) {
        this.ch = ch;
    }

    /** The next {@code n} bytes ({@code n} at most {@link #SIZE}), valid until the next call; EOF if the peer closes. */
    ByteBuffer next(int n) throws IOException {
        if (ahead.remaining() < n) {
            ahead.compact();
            while (ahead.position() < n) {
                if (ch.read(ahead) < 0) {
                    throw new EOFException("peer closed the connection");
                }
            }
            ahead.flip();
        }
        ByteBuffer bytes = ahead.slice(ahead.position(), n);
        ahead.position(ahead.position() + n);
        return bytes;
    }

    /** Fills {@code dst} to its limit: first from the bytes read ahead, then from the channel directly. */
    void readFully(ByteBuffer dst) throws IOException {
        int n = Math.min(ahead.remaining(), dst.remaining());
        dst.put(ahead.slice(ahead.position(), n));
        ahead.position(ahead.position() + n);
        Wire.readFully(ch, dst);
    }
}
