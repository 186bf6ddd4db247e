package io.github.qcowloom.nbd;

import static io.github.qcowloom.nbd.Protocol.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sends replies for one connection. Requests finish on many threads and replies go out in any order (proto.md
 * "Transmission"). A finished request queues its reply; if another thread is sending, it leaves the reply to that
 * one and goes on, else it sends what is queued, many replies in one gathering write, until the queue is empty. A
 * burst of replies then costs the server one system call and the client one wake-up, not one each. Each reply's
 * {@code sent} runs once its bytes are on the socket or cannot be (the client has gone): only then may its buffers
 * be reused.
 *
 * <p>Lock discipline: takes none of its own (the {@code sent} callbacks take the connection's budget lock briefly).
 * The queue is lock-free; {@link #signals} elects the single sending thread (the drain loop of a serializing queue:
 * a thread that queues a reply while another sends leaves it to that one, which drains once more for every signal
 * it missed). Only that thread touches {@link #heads}, {@link #gather}, {@link #batch} and {@link #broken}; the
 * atomic counter orders its writes before the next sender's reads. {@link #clientGone}, volatile, is the copy of
 * {@code broken} that the connection's reader reads.
 */
final class Replies {
    private static final Logger LOG = LoggerFactory.getLogger(Replies.class);
    /** Replies per gathering write: two buffers each, well under the kernel's 1024 (IOV_MAX). */
    private static final int BATCH = 64;
    /** Heads up to this size are copied into {@link #heads} (a heap buffer costs the JDK a native copy a write). */
    private static final int STAGED_HEAD = 32;

    private record Reply(ByteBuffer head, ByteBuffer data, Runnable sent) {}

    private final GatheringByteChannel ch;
    private final boolean structured;
    private final ConcurrentLinkedQueue<Reply> queue = new ConcurrentLinkedQueue<>();
    /** Replies queued and not yet seen by a drain pass; the thread that raises it from 0 sends. */
    private final AtomicInteger signals = new AtomicInteger();
    private final ByteBuffer heads = ByteBuffer.allocateDirect(BATCH * STAGED_HEAD);
    private final ByteBuffer[] gather = new ByteBuffer[2 * BATCH];
    private final Reply[] batch = new Reply[BATCH];
    /** A write failed: the client has gone, so later replies are dropped (their {@code sent} still runs). */
    private boolean broken;
    /** {@code broken}, for the connection's reader: it stops taking the requests a gone client left queued. */
    private volatile boolean clientGone;
    /**
     * Tests only: run in the two windows where another thread's reply can slip between steps of the election,
     * after a reply is queued and before a drain pass gives up its signals, so a seeded schedule can open them.
     */
    volatile Runnable raceWindow;

    /** True while other requests of the connection are being served: their replies may come soon. */
    private final BooleanSupplier othersInFlight;

    Replies(GatheringByteChannel ch, boolean structured, BooleanSupplier othersInFlight) {
        this.ch = ch;
        this.structured = structured;
        this.othersInFlight = othersInFlight;
    }

    /** Success without data: a simple reply, or NBD_REPLY_TYPE_NONE with DONE under structured replies. */
    void ok(long cookie, Runnable sent) {
        send(structured ? chunkHeader(cookie, REPLY_TYPE_NONE, 0) : simpleHeader(cookie, 0), null, sent);
    }

    /**
     * A successful read: one NBD_REPLY_TYPE_OFFSET_DATA chunk with DONE (so DF always holds), or a simple reply. A
     * read of nothing gets NBD_REPLY_TYPE_NONE alone, as qemu-nbd sends it: a data chunk must hold a byte (libnbd and
     * QEMU's client drop the connection over an empty one).
     */
    void data(long cookie, long offset, ByteBuffer data, Runnable sent) {
        if (structured && !data.hasRemaining()) {
            ok(cookie, sent);
        } else if (structured) {
            data(cookie, offset, data, true, sent);
        } else {
            send(simpleHeader(cookie, 0), data, sent);
        }
    }

    /** One NBD_REPLY_TYPE_OFFSET_DATA chunk of a structured read ({@code data} not empty); {@code last}: DONE. */
    void data(long cookie, long offset, ByteBuffer data, boolean last, Runnable sent) {
        ByteBuffer head = chunkHeader(cookie, REPLY_TYPE_OFFSET_DATA, 8 + data.remaining(), last);
        send(ByteBuffer.allocate(28).put(head).putLong(offset).flip(), data, sent);
    }

    /** One NBD_REPLY_TYPE_OFFSET_HOLE chunk of a structured read: {@code length} bytes of zeroes at {@code offset}. */
    void hole(long cookie, long offset, int length, boolean last, Runnable sent) {
        ByteBuffer head = chunkHeader(cookie, REPLY_TYPE_OFFSET_HOLE, 12, last);
        send(ByteBuffer.allocate(32).put(head).putLong(offset).putInt(length).flip(), null, sent);
    }

    /** A failed request: NBD_REPLY_TYPE_ERROR with DONE, or a simple reply carrying the error. */
    void error(long cookie, int errno, String message, Runnable sent) {
        if (structured) {
            byte[] m = message == null ? new byte[0] : message.getBytes(StandardCharsets.UTF_8);
            int len = Math.min(m.length, 4096);
            ByteBuffer head = chunkHeader(cookie, REPLY_TYPE_ERROR, 6 + len);
            send(ByteBuffer.allocate(26 + len).put(head).putInt(errno).putShort((short) len).put(m, 0, len).flip(),
                    null, sent);
        } else {
            send(simpleHeader(cookie, errno), null, sent);
        }
    }

    /** NBD_REPLY_TYPE_BLOCK_STATUS with DONE: context id, then (length, flags) per extent. */
    void blockStatus(long cookie, int contextId, List<Extents.Extent> extents, Runnable sent) {
        blockStatus(cookie, contextId, extents, true, sent);
    }

    /** One context's extents; {@code last} for the reply's last chunk (the DONE flag). */
    void blockStatus(long cookie, int contextId, List<Extents.Extent> extents, boolean last, Runnable sent) {
        int len = 4 + 8 * extents.size();
        ByteBuffer head = chunkHeader(cookie, REPLY_TYPE_BLOCK_STATUS, len, last);
        ByteBuffer b = ByteBuffer.allocate(20 + len).put(head).putInt(contextId);
        for (Extents.Extent e : extents) {
            b.putInt((int) e.length()).putInt(e.flags());
        }
        send(b.flip(), null, sent);
    }

    private static ByteBuffer simpleHeader(long cookie, int errno) {
        return ByteBuffer.allocate(16).putInt(SIMPLE_REPLY_MAGIC).putInt(errno).putLong(cookie).flip();
    }

    private static ByteBuffer chunkHeader(long cookie, int type, int length) {
        return chunkHeader(cookie, type, length, true);
    }

    /** A structured reply chunk's header; {@code last}: the reply's last chunk (the DONE flag). */
    private static ByteBuffer chunkHeader(long cookie, int type, int length, boolean last) {
        return ByteBuffer.allocate(20).putInt(STRUCTURED_REPLY_MAGIC).putShort((short) (last ? REPLY_FLAG_DONE : 0))
                .putShort((short) type).putLong(cookie).putInt(length).flip();
    }

    /** Queues a reply; sends the queue unless another thread is sending it. Never throws for a failed write. */
    private void send(ByteBuffer head, ByteBuffer data, Runnable sent) {
        queue.add(new Reply(head, data, sent));
        openRaceWindow();
        if (signals.getAndIncrement() != 0) {
            return;
        }
        if (othersInFlight.getAsBoolean() && Thread.currentThread().isVirtual()) {
            // Let the threads that are ready to run (often requests completed in the same burst) queue their
            // replies first, so they go out in this thread's write.
            Thread.yield();
        }
        int missed = 1;
        do {
            while (writeBatch()) {
                // until the queue is empty
            }
            openRaceWindow();
            missed = signals.addAndGet(-missed);
        } while (missed != 0);
    }

    private void openRaceWindow() {
        Runnable window = raceWindow;
        if (window != null) {
            window.run();
        }
    }

    /** True once a reply could not be sent: the client has gone. From any thread. */
    boolean clientGone() {
        return clientGone;
    }

    /** Writes up to {@link #BATCH} queued replies in one gathering write; false if the queue was empty. */
    private boolean writeBatch() {
        int n = 0;
        for (Reply r; n < BATCH && (r = queue.poll()) != null; ) {
            batch[n++] = r;
        }
        if (n == 0) {
            return false;
        }
        try {
            if (!broken) {
                write(n);
            }
        } catch (IOException | RuntimeException | Error e) { // an Error too: the queue must go on being drained
            broken = true;
            clientGone = true;
            LOG.debug("cannot send {} NBD replies, the first to cookie {}: {}", n, batch[0].head().getLong(8),
                    e.toString());
        } finally {
            for (int i = 0; i < n; i++) {
                Reply r = batch[i];
                batch[i] = null;
                try {
                    r.sent().run();
                } catch (RuntimeException | Error e) {
                    LOG.warn("releasing an NBD reply failed (a defect)", e);
                }
            }
            Arrays.fill(gather, null);
        }
        return true;
    }

    private void write(int n) throws IOException {
        heads.clear();
        int parts = 0;
        long total = 0;
        for (int i = 0; i < n; i++) {
            ByteBuffer head = batch[i].head();
            if (head.remaining() <= STAGED_HEAD) {
                int at = heads.position();
                heads.put(head.duplicate());
                head = heads.slice(at, heads.position() - at);
            }
            gather[parts++] = head;
            total += head.remaining();
            ByteBuffer data = batch[i].data();
            if (data != null && data.hasRemaining()) {
                gather[parts++] = data;
                total += data.remaining();
            }
        }
        while (total > 0) {
            total -= ch.write(gather, 0, parts);
        }
    }
}
