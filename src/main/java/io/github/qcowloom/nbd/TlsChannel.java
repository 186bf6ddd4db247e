package io.github.qcowloom.nbd;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.util.concurrent.locks.ReentrantLock;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLEngineResult.HandshakeStatus;
import javax.net.ssl.SSLException;

/**
 * TLS over a blocking socket channel with an {@link SSLEngine}: the handshake runs once, on the connection's own
 * thread, when NBD_OPT_STARTTLS is acknowledged; then one thread reads (unwraps) while request threads write
 * (wrap) their replies. The engine allows one wrap and one unwrap at a time, concurrently ({@link SSLEngine}'s
 * "wrap() and unwrap() may execute concurrently of each other"), so reads and writes each have their own lock.
 *
 * <p>Memory is fixed per connection, whatever the client does: {@code netIn} and {@code netOut} hold
 * {@link #RECORDS} TLS records each, {@code appIn} one record's plaintext. A client that stops reading blocks the
 * writer in the socket write (TCP backpressure) without anything queuing here.
 *
 * <p>Lock discipline: {@code readLock} guards {@code netIn}, {@code appIn} and unwrap; {@code writeLock} guards
 * {@code netOut} and wrap. Order: readLock, then writeLock (the reader wraps the engine's answer to a TLS 1.3
 * KeyUpdate or a close_notify under writeLock); a writer never takes readLock.
 */
final class TlsChannel implements ByteStream {
    /** TLS records one socket read or write moves at most: fewer system calls for 32 MiB payloads. */
    private static final int RECORDS = 4;
    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0);

    private final SocketChannel ch;
    private final SSLEngine engine;
    private final ReentrantLock readLock = new ReentrantLock();
    private final ReentrantLock writeLock = new ReentrantLock();
    /** Ciphertext read from the socket and not yet unwrapped; in write mode (filled up to its position). */
    private final ByteBuffer netIn;
    /** Plaintext unwrapped and not yet read; in read mode. */
    private final ByteBuffer appIn;
    /** Ciphertext wrapped and being written; in write mode between writes. */
    private final ByteBuffer netOut;
    /** The peer's close_notify arrived: reads return -1. Guarded by readLock. */
    private boolean inboundDone;

    private TlsChannel(SocketChannel ch, SSLEngine engine) {
        this.ch = ch;
        this.engine = engine;
        int packet = engine.getSession().getPacketBufferSize();
        this.netIn = ByteBuffer.allocate(RECORDS * packet);
        this.appIn = ByteBuffer.allocate(engine.getSession().getApplicationBufferSize()).flip();
        this.netOut = ByteBuffer.allocate(RECORDS * packet);
    }

    /**
     * Runs the server side of the TLS handshake on {@code ch} (nothing of it may have been read yet) and returns
     * the channel that carries the rest of the connection. A failed handshake (no or untrusted client certificate,
     * no common protocol) throws {@link SSLException} after sending the engine's alert, so the client learns why.
     */
    static TlsChannel handshake(SocketChannel ch, SSLEngine engine) throws IOException {
        TlsChannel t = new TlsChannel(ch, engine);
        t.readLock.lock();
        t.writeLock.lock();
        try {
            t.runHandshake();
        } finally {
            t.writeLock.unlock();
            t.readLock.unlock();
        }
        return t;
    }

    /** The negotiated protocol, e.g. "TLSv1.3". */
    String protocol() {
        return engine.getSession().getProtocol();
    }

    private void runHandshake() throws IOException {
        engine.beginHandshake();
        try {
            HandshakeStatus hs = engine.getHandshakeStatus();
            while (hs != HandshakeStatus.FINISHED && hs != HandshakeStatus.NOT_HANDSHAKING) {
                switch (hs) {
                    case NEED_WRAP -> hs = wrapOnce(EMPTY).getHandshakeStatus();
                    case NEED_TASK -> hs = runTasks();
                    case NEED_UNWRAP, NEED_UNWRAP_AGAIN -> {
                        SSLEngineResult r = unwrapOnce(appIn.clear());
                        appIn.flip();
                        if (r.getStatus() == SSLEngineResult.Status.BUFFER_UNDERFLOW) {
                            if (fill() < 0) {
                                throw new EOFException("peer closed the connection during the TLS handshake");
                            }
                        } else if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                            throw new SSLException("peer closed TLS during the handshake");
                        }
                        hs = r.getHandshakeStatus();
                    }
                    default -> throw new SSLException("unexpected TLS handshake state " + hs);
                }
            }
        } catch (SSLException e) {
            sendAlert();
            throw e;
        }
    }

    /** After a failed handshake the engine holds an alert for the peer; send it, best effort. */
    private void sendAlert() {
        try {
            engine.closeOutbound();
            for (int i = 0; i < 4 && engine.getHandshakeStatus() == HandshakeStatus.NEED_WRAP; i++) {
                wrapOnce(EMPTY);
            }
        } catch (IOException | RuntimeException e) {
            // The handshake already failed; the alert is a courtesy.
        }
    }

    private HandshakeStatus runTasks() {
        for (Runnable task = engine.getDelegatedTask(); task != null; task = engine.getDelegatedTask()) {
            task.run();
        }
        return engine.getHandshakeStatus();
    }

    /** Reads more ciphertext into netIn; -1 at end of stream. Caller holds readLock. */
    private int fill() throws IOException {
        if (!netIn.hasRemaining()) {
            throw new SSLException("TLS record larger than the engine's packet size");
        }
        return ch.read(netIn);
    }

    /** Unwraps what netIn holds into {@code dst}. Caller holds readLock. */
    private SSLEngineResult unwrapOnce(ByteBuffer dst) throws SSLException {
        netIn.flip();
        try {
            return engine.unwrap(netIn, dst);
        } finally {
            netIn.compact();
        }
    }

    /** Wraps (part of) {@code src} into one record and writes it out. Caller holds writeLock. */
    private SSLEngineResult wrapOnce(ByteBuffer src) throws IOException {
        netOut.clear();
        SSLEngineResult r = engine.wrap(src, netOut);
        flushNetOut();
        return r;
    }

    private void flushNetOut() throws IOException {
        netOut.flip();
        while (netOut.hasRemaining()) {
            ch.write(netOut);
        }
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        if (!dst.hasRemaining()) {
            return 0;
        }
        readLock.lock();
        try {
            while (true) {
                if (appIn.hasRemaining()) {
                    int n = Math.min(appIn.remaining(), dst.remaining());
                    dst.put(dst.position(), appIn, appIn.position(), n).position(dst.position() + n);
                    appIn.position(appIn.position() + n);
                    return n;
                }
                if (inboundDone) {
                    return -1;
                }
                // Large reads (WRITE payloads) decrypt straight into the caller's buffer: no copy.
                boolean direct = dst.remaining() >= appIn.capacity();
                int before = dst.position();
                SSLEngineResult r = unwrapOnce(direct ? dst : appIn.clear());
                if (!direct) {
                    appIn.flip();
                }
                afterUnwrap(r.getHandshakeStatus());
                switch (r.getStatus()) {
                    case OK -> {
                        if (direct && dst.position() > before) {
                            return dst.position() - before;
                        }
                    }
                    case BUFFER_UNDERFLOW -> {
                        if (fill() < 0) {
                            return -1; // the socket ended (or stop() shut its input) without close_notify
                        }
                    }
                    case CLOSED -> inboundDone = true;
                    case BUFFER_OVERFLOW -> throw new SSLException("TLS record larger than the application buffer");
                }
            }
        } finally {
            readLock.unlock();
        }
    }

    /**
     * What the engine needs after an unwrap: delegated tasks, or a record of its own for the peer (the answer to
     * a TLS 1.3 KeyUpdate, or close_notify). Anything else is a new handshake, which this server does not allow
     * (TLS 1.2 renegotiation). Caller holds readLock.
     */
    private void afterUnwrap(HandshakeStatus hs) throws IOException {
        while (hs != HandshakeStatus.NOT_HANDSHAKING && hs != HandshakeStatus.FINISHED) {
            switch (hs) {
                case NEED_TASK -> hs = runTasks();
                case NEED_WRAP -> {
                    if ("TLSv1.2".equals(engine.getSession().getProtocol()) && !engine.isInboundDone()) {
                        throw new SSLException("TLS renegotiation is not supported");
                    }
                    writeLock.lock();
                    try {
                        hs = wrapOnce(EMPTY).getHandshakeStatus();
                    } finally {
                        writeLock.unlock();
                    }
                    if (engine.isOutboundDone()) {
                        return;
                    }
                }
                // NEED_UNWRAP: the next read's unwrap goes on with it (TLS 1.3 KeyUpdate without more data).
                default -> {
                    return;
                }
            }
        }
    }

    /** Wraps and sends everything in {@code srcs}, blocking until the socket has taken it. */
    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
        long total = 0;
        writeLock.lock();
        try {
            while (remaining(srcs, offset, length) > 0) {
                netOut.clear();
                int packet = engine.getSession().getPacketBufferSize();
                // Several records per socket write, each wrap makes at most one.
                while (netOut.remaining() >= packet && remaining(srcs, offset, length) > 0) {
                    SSLEngineResult r = engine.wrap(srcs, offset, length, netOut);
                    if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                        flushNetOut();
                        throw new SSLException("TLS session closed");
                    }
                    if (r.bytesConsumed() == 0 && r.bytesProduced() == 0) {
                        // The engine waits for a handshake message (renegotiation): refused, see afterUnwrap.
                        throw new SSLException("TLS engine stalled in state " + r.getHandshakeStatus());
                    }
                    total += r.bytesConsumed();
                }
                flushNetOut();
            }
            return total;
        } finally {
            writeLock.unlock();
        }
    }

    private static long remaining(ByteBuffer[] srcs, int offset, int length) {
        long n = 0;
        for (int i = offset; i < offset + length; i++) {
            n += srcs[i].remaining();
        }
        return n;
    }

    @Override
    public boolean isOpen() {
        return ch.isOpen();
    }

    /**
     * Sends close_notify if no writer is busy and the socket takes it at once (a client that stopped reading
     * must not hold this up), then closes the socket.
     */
    @Override
    public void close() throws IOException {
        try {
            if (ch.isOpen() && writeLock.tryLock()) {
                try {
                    engine.closeOutbound();
                    netOut.clear();
                    engine.wrap(EMPTY, netOut);
                    // No writer is in the socket (this thread holds writeLock): one non-blocking attempt.
                    ch.configureBlocking(false);
                    ch.write(netOut.flip());
                } catch (IOException e) {
                    // The peer has gone: nothing to tell it.
                } finally {
                    writeLock.unlock();
                }
            }
        } finally {
            ch.close();
        }
    }
}
