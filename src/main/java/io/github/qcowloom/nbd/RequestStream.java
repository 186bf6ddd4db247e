package io.github.qcowloom.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;

/**
 * The transmission phase's incoming bytes, read ahead into one buffer: a client with many requests in flight sends
 * them in bursts, and a burst of headers is read with one system call rather than one each (on a virtual thread, a
 * read that finds the socket empty also costs a poller registration and a wake-up). WRITE payloads are read
 * straight into their own buffers past what is already here. Used by the connection's one reading thread only.
 *
 * <p>The buffer is one of the server's {@link PayloadBuffers}, direct because a channel reads a heap buffer
 * through a temporary direct one, and given back by {@link #close}. It holds what the client has sent ahead, at
 * most {@link #SIZE} bytes beyond what the connection's budget counts.
 */
final class RequestStream implements AutoCloseable {
    /** Room for 2340 request headers: more than a connection's 64 requests in flight send ahead. */
    static final int SIZE = 64 << 10;

    private final ReadableByteChannel ch;
    private final PayloadBuffers buffers;
    private final ByteBuffer ahead; // unread bytes: position to limit
    private boolean closed;

    RequestStream(ReadableByteChannel ch, PayloadBuffers buffers) {
        this.ch = ch;
        this.buffers = buffers;
        this.ahead = buffers.take(SIZE).flip();
    }

    /** The next {@code n} bytes ({@code n} at most {@link #SIZE}), valid until the next call; EOF if the peer closes. */
    ByteBuffer next(int n) throws IOException {
        if (n > SIZE) {
            throw new IllegalArgumentException(n + " bytes do not fit the " + SIZE + " read ahead");
        }
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
        dst.put(dst.position(), ahead, ahead.position(), n).position(dst.position() + n);
        ahead.position(ahead.position() + n);
        Wire.readFully(ch, dst);
    }

    /** Gives the buffer back (once: the pool must never hand one buffer to two takers); unread bytes are dropped. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            buffers.give(ahead);
        }
    }
}
