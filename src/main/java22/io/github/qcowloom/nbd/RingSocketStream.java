package io.github.qcowloom.nbd;

import io.github.qcowloom.os.LoopSockets;
import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A plain connection's transmission stream whose reads go through the ring of the event loop that runs the reading
 * thread ({@link LoopSockets}); writes, and reads on other threads, go through the JDK's channel.
 *
 * <p>The ring reads a descriptor of our own, a duplicate of the channel's: the channel's number may be closed and
 * given to another file at any moment the JDK closes it, and a read already in a ring would not notice a close.
 * Ours is closed only after its last read has returned. A read waiting in the ring ends only when the socket is
 * shut down (the server shuts a connection's input down when it stops), so {@link #close}, a failed write (the JDK
 * may have closed its channel) and a failed ring read shut it down; a ring read is not ended by an interrupt.
 *
 * <p>Lock discipline: no lock. {@link #state} counts the reads using our descriptor and carries a closed bit;
 * whichever of {@link #close} and the last read sees the count reach 0 with the bit set closes the descriptor.
 */
final class RingSocketStream implements ByteStream {
    private static final int CLOSED = Integer.MIN_VALUE;
    private static final Field FD_VAL = fdField();

    /** The JDK's reads and writes: writes always, reads where a ring read cannot wait. */
    private final ByteStream plain;
    private final int own;
    private final AtomicInteger state = new AtomicInteger();

    private RingSocketStream(SocketChannel ch, int own) {
        this.plain = ByteStream.plain(ch);
        this.own = own;
    }

    /**
     * The stream for {@code ch} if the calling thread runs on an event loop and the JDK lets us see the channel's
     * descriptor ({@code --add-opens java.base/sun.nio.ch=ALL-UNNAMED}, which the jar's manifest gives); else null.
     */
    static ByteStream open(SocketChannel ch) throws IOException {
        if (FD_VAL == null || !LoopSockets.onALoop()) {
            return null;
        }
        int fd;
        try {
            fd = FD_VAL.getInt(ch);
        } catch (IllegalAccessException | IllegalArgumentException e) {
            return null;
        }
        int own = LoopSockets.duplicate(fd);
        // The JDK marks a channel closed before it closes the descriptor: open now, so the number was still its own.
        if (!ch.isOpen()) {
            LoopSockets.close(own);
            return null;
        }
        return new RingSocketStream(ch, own);
    }

    private static Field fdField() {
        try {
            Field f = Class.forName("sun.nio.ch.SocketChannelImpl").getDeclaredField("fdVal");
            f.setAccessible(true);
            return f;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null; // the package not opened to us, or another JDK's layout: the JDK's reads, then
        }
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        if (!dst.isDirect()) {
            return plain.read(dst);
        }
        if (!acquire()) {
            throw new ClosedChannelException();
        }
        int n;
        try {
            n = LoopSockets.receive(own, dst);
        } catch (IOException e) {
            // A failed ring may still hold the read: with the socket shut down, no more bytes land in dst.
            LoopSockets.shutdown(own);
            throw e;
        } finally {
            release();
        }
        return n == LoopSockets.NOT_ON_A_LOOP ? plain.read(dst) : n;
    }

    private boolean acquire() {
        while (true) {
            int s = state.get();
            if (s < 0) {
                return false;
            }
            if (state.compareAndSet(s, s + 1)) {
                return true;
            }
        }
    }

    private void release() {
        if (state.decrementAndGet() == CLOSED) {
            LoopSockets.close(own);
        }
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        try {
            return plain.write(srcs, offset, length);
        } catch (IOException e) {
            shutDown();
            throw e;
        }
    }

    /** Shuts the socket down through our descriptor, if it is still ours. */
    private void shutDown() {
        if (acquire()) {
            try {
                LoopSockets.shutdown(own);
            } finally {
                release();
            }
        }
    }

    @Override
    public boolean isOpen() {
        return state.get() >= 0 && plain.isOpen();
    }

    /** Ends a read waiting in a ring (it sees the end of the stream), then closes both descriptors. */
    @Override
    public void close() throws IOException {
        while (true) {
            int s = state.get();
            if (s < 0) {
                return;
            }
            // Closed, and one use of our own, so the descriptor stays ours while we shut it down.
            if (state.compareAndSet(s, (s + 1) | CLOSED)) {
                break;
            }
        }
        try {
            LoopSockets.shutdown(own);
        } finally {
            release();
            plain.close();
        }
    }
}
