package io.github.qcowloom.nbd;

import static io.github.qcowloom.nbd.Protocol.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Sends replies for one connection. Requests finish on many threads and replies go out in any order (proto.md
 * "Transmission"), so one lock keeps each reply's bytes together on the socket.
 */
final class Replies {
    /** A reply could not be sent: the client has gone or its connection was closed (not a failed request). */
    static final class Unsent extends IOException {
        Unsent(IOException cause) {
            super("reply not sent: " + cause, cause);
        }
    }

    private final GatheringByteChannel ch;
    private final boolean structured;
    private final ReentrantLock lock = new ReentrantLock();

    Replies(GatheringByteChannel ch, boolean structured) {
        this.ch = ch;
        this.structured = structured;
    }

    /** Success without data: a simple reply, or NBD_REPLY_TYPE_NONE with DONE under structured replies. */
    void ok(long cookie) throws IOException {
        if (structured) {
            send(chunkHeader(cookie, REPLY_TYPE_NONE, 0));
        } else {
            send(simpleHeader(cookie, 0));
        }
    }

    /** A successful read: one NBD_REPLY_TYPE_OFFSET_DATA chunk with DONE (so DF always holds), or a simple reply. */
    void data(long cookie, long offset, ByteBuffer data) throws IOException {
        if (structured) {
            ByteBuffer head = chunkHeader(cookie, REPLY_TYPE_OFFSET_DATA, 8 + data.remaining());
            send(ByteBuffer.allocate(28).put(head).putLong(offset).flip(), data);
        } else {
            send(simpleHeader(cookie, 0), data);
        }
    }

    /** A failed request: NBD_REPLY_TYPE_ERROR with DONE, or a simple reply carrying the error. */
    void error(long cookie, int errno, String message) throws IOException {
        if (structured) {
            byte[] m = message == null ? new byte[0] : message.getBytes(StandardCharsets.UTF_8);
            int len = Math.min(m.length, 4096);
            ByteBuffer head = chunkHeader(cookie, REPLY_TYPE_ERROR, 6 + len);
            send(ByteBuffer.allocate(26 + len).put(head).putInt(errno).putShort((short) len).put(m, 0, len).flip());
        } else {
            send(simpleHeader(cookie, errno));
        }
    }

    /** NBD_REPLY_TYPE_BLOCK_STATUS with DONE: context id, then (length, flags) per extent. */
    void blockStatus(long cookie, int contextId, List<Extents.Extent> extents) throws IOException {
        int len = 4 + 8 * extents.size();
        ByteBuffer b = ByteBuffer.allocate(20 + len).put(chunkHeader(cookie, REPLY_TYPE_BLOCK_STATUS, len))
                .putInt(contextId);
        for (Extents.Extent e : extents) {
            b.putInt((int) e.length()).putInt(e.flags());
        }
        send(b.flip());
    }

    private static ByteBuffer simpleHeader(long cookie, int errno) {
        return ByteBuffer.allocate(16).putInt(SIMPLE_REPLY_MAGIC).putInt(errno).putLong(cookie).flip();
    }

    private static ByteBuffer chunkHeader(long cookie, int type, int length) {
        return ByteBuffer.allocate(20).putInt(STRUCTURED_REPLY_MAGIC).putShort((short) REPLY_FLAG_DONE)
                .putShort((short) type).putLong(cookie).putInt(length).flip();
    }

    private void send(ByteBuffer... parts) throws IOException {
        long total = 0;
        for (ByteBuffer p : parts) {
            total += p.remaining();
        }
        lock.lock();
        try {
            while (total > 0) {
                total -= ch.write(parts);
            }
        } catch (IOException e) {
            throw new Unsent(e);
        } finally {
            lock.unlock();
        }
    }
}
