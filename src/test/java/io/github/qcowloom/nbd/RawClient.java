package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/** A hand-driven NBD client on a Unix socket or TCP, for sending what real clients never would. */
final class RawClient implements AutoCloseable {
    final SocketChannel ch;

    RawClient(SocketAddress address) throws IOException {
        ch = address instanceof UnixDomainSocketAddress ? SocketChannel.open(StandardProtocolFamily.UNIX)
                : SocketChannel.open();
        ch.connect(address);
        ByteBuffer g = read(18);
        assertEquals(Protocol.NBDMAGIC, g.getLong());
        assertEquals(Protocol.IHAVEOPT, g.getLong());
    }

    void send(ByteBuffer b) throws IOException {
        Wire.writeFully(ch, b.flip());
    }

    ByteBuffer read(int n) throws IOException {
        return Wire.read(ch, n);
    }

    /** Sends an option and returns the reply type of its first reply (skipping that reply's data). */
    int option(int option, ByteBuffer data) throws IOException {
        data.flip();
        send(ByteBuffer.allocate(16 + data.remaining()).putLong(Protocol.IHAVEOPT).putInt(option)
                .putInt(data.remaining()).put(data));
        ByteBuffer h = read(20);
        assertEquals(Protocol.OPTION_REPLY_MAGIC, h.getLong());
        assertEquals(option, h.getInt());
        int type = h.getInt();
        read(h.getInt());
        return type;
    }

    /** Client flags, then GO for the empty name: simple replies from here on. */
    RawClient go() throws IOException {
        send(ByteBuffer.allocate(4).putInt(Protocol.FLAG_FIXED_NEWSTYLE | Protocol.FLAG_NO_ZEROES));
        return goOn();
    }

    /** Client flags, STRUCTURED_REPLY, then GO for the empty name: structured replies from here on. */
    RawClient goStructured() throws IOException {
        send(ByteBuffer.allocate(4).putInt(Protocol.FLAG_FIXED_NEWSTYLE | Protocol.FLAG_NO_ZEROES));
        assertEquals(Protocol.REP_ACK, option(Protocol.OPT_STRUCTURED_REPLY, ByteBuffer.allocate(0)));
        return goOn();
    }

    private RawClient goOn() throws IOException {
        assertEquals(Protocol.REP_INFO, option(Protocol.OPT_GO, ByteBuffer.allocate(6).putInt(0).putShort((short) 0)));
        while (true) {
            ByteBuffer h = read(20);
            h.getLong();
            h.getInt();
            int type = h.getInt();
            read(h.getInt());
            if (type == Protocol.REP_ACK) {
                return this;
            }
        }
    }

    void request(int type, long cookie, long offset, long length, byte[] payload) throws IOException {
        request(type, 0, cookie, offset, length, payload);
    }

    void request(int type, int flags, long cookie, long offset, long length, byte[] payload) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(28 + (payload == null ? 0 : payload.length)).putInt(Protocol.REQUEST_MAGIC)
                .putShort((short) flags).putShort((short) type).putLong(cookie).putLong(offset).putInt((int) length);
        if (payload != null) {
            b.put(payload);
        }
        send(b);
    }

    /** Reads one simple reply for {@code cookie} and returns its error; the data of a READ follows unread. */
    int reply(long cookie) throws IOException {
        ByteBuffer r = read(16);
        assertEquals(Protocol.SIMPLE_REPLY_MAGIC, r.getInt());
        int err = r.getInt();
        assertEquals(cookie, r.getLong());
        return err;
    }

    /** True when the server closes the connection within a few seconds. */
    boolean closedByServer() throws Exception {
        ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor();
        try {
            Future<Integer> f = ex.submit(() -> {
                ByteBuffer b = ByteBuffer.allocate(4096);
                int n;
                while ((n = ch.read(b.clear())) >= 0) {
                    // Drain whatever the server still sends.
                }
                return n;
            });
            return f.get(Duration.ofSeconds(5).toMillis(), TimeUnit.MILLISECONDS) < 0;
        } finally {
            ex.shutdownNow();
        }
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
