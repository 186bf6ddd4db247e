package io.github.qcowloom.nbd;

import static io.github.qcowloom.nbd.Protocol.*;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ImageException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The transmission phase of one connection (proto.md "Transmission"): this thread reads requests; each runs on the
 * executor and replies when done, in any order. Ends on DISC, EOF or a broken stream, after every request already
 * started has finished. At most {@link #MAX_IN_FLIGHT} requests, holding at most the connection's
 * {@link ByteBudget} of buffers, are in flight: a client that sends requests without reading the replies pins no
 * more than that.
 *
 * <p>Lock discipline: none; the reading thread waits on the budget and the in-flight slots, and request threads
 * queue their replies with {@link Replies}, which takes no lock either.
 */
final class Transmission {
    private static final Logger LOG = LoggerFactory.getLogger(Transmission.class);
    /**
     * Requests in flight per connection; a client with more waits for the socket (TCP/Unix backpressure), once the
     * read-ahead ({@link RequestStream#SIZE}) is full too.
     */
    private static final int MAX_IN_FLIGHT = 64;
    /** Memory one block status extent takes until its reply is sent: the Extent, its list slot, its 8 reply bytes. */
    private static final long EXTENT_BYTES = 48;

    private final ByteStream ch;
    /** True once the server is stopping: no request is started after that, even one already read ahead. */
    private final BooleanSupplier stopping;
    private final Export export;
    private final Session session;
    private final ExecutorService executor;
    private final Replies replies;
    private final Semaphore slots = new Semaphore(MAX_IN_FLIGHT);
    private final ByteBudget budget;
    private final PayloadBuffers buffers;
    /** Hears every unchecked exception a request ends in: ranges are checked first, so each is a defect. */
    private final Consumer<RuntimeException> defects;

    Transmission(ByteStream ch, Export export, Session session, ExecutorService executor, ByteBudget budget,
            PayloadBuffers buffers, Consumer<RuntimeException> defects, BooleanSupplier stopping) {
        this.defects = defects;
        this.ch = ch;
        this.stopping = stopping;
        this.export = export;
        this.session = session;
        this.executor = executor;
        this.budget = budget;
        this.buffers = buffers;
        this.replies = new Replies(ch, session.structuredReplies(),
                () -> slots.availablePermits() < MAX_IN_FLIGHT - 1);
    }

    /**
     * Serves requests until DISC, the end of the stream or the server's stop, then waits for the outstanding ones.
     */
    void run() throws IOException {
        try (RequestStream incoming = new RequestStream(ch, buffers)) {
            readRequests(incoming);
        }
    }

    private void readRequests(RequestStream incoming) throws IOException {
        try {
            while (true) {
                Request h = next(incoming);
                // A client that has gone may have left thousands of requests in the socket: none is served.
                if (h == null || stopping.getAsBoolean() || replies.clientGone()) {
                    return;
                }
                // The bytes this request will hold are taken before they are allocated; a client that does not
                // read its replies leaves this thread waiting here, and the socket pushes back on it.
                long cost = cost(h);
                budget.acquire(cost);
                Request r;
                try {
                    if (!ch.isOpen()) {
                        // Closed (by stop) while this thread waited: nothing more to serve.
                        budget.release(cost);
                        return;
                    }
                    r = withPayload(h, incoming);
                } catch (IOException | RuntimeException | Error e) {
                    budget.release(cost);
                    throw e;
                }
                slots.acquireUninterruptibly();
                if (stopping.getAsBoolean()) {
                    // The wait for the budget or a slot outlasted the start of a stop.
                    release(r, cost);
                    return;
                }
                Release done = new Release(r, cost);
                try {
                    executor.execute(() -> serve(r, done));
                } catch (RejectedExecutionException e) {
                    release(r, cost);
                    return;
                }
            }
        } finally {
            // DISC: "finish outstanding requests" before closing; this also covers EOF and errors.
            slots.acquireUninterruptibly(MAX_IN_FLIGHT);
            slots.release(MAX_IN_FLIGHT);
        }
    }

    /** Gives back what a request holds once it is done or dropped: its WRITE payload, its budget, its slot. */
    private void release(Request r, long cost) {
        if (r.payload() != null) {
            buffers.give(r.payload());
        }
        budget.release(cost);
        slots.release();
    }

    /** The metadata contexts selected, each a chunk of a block status reply; at least 1. */
    private int contexts() {
        return Math.max(1, session.contexts());
    }

    /**
     * The bytes a request holds until its reply is sent: a READ's data, a WRITE's payload (each in a buffer of the
     * next power of two), a BLOCK_STATUS's extents (at most {@link Extents#MAX_EXTENTS} for each context selected),
     * a CACHE's copy buffer; other requests hold a few bytes only. A READ longer than {@link Protocol#MAX_PAYLOAD}
     * is refused without allocating anything.
     */
    private long cost(Request r) {
        return switch (r.type()) {
            case CMD_READ -> r.length() <= MAX_PAYLOAD ? PayloadBuffers.capacityFor(r.length()) : 0;
            case CMD_WRITE -> PayloadBuffers.capacityFor(r.length());
            case CMD_BLOCK_STATUS -> contexts() * EXTENT_BYTES * (r.has(CMD_FLAG_REQ_ONE) ? 1
                    : Math.min(Extents.MAX_EXTENTS, Math.max(1, r.length())));
            case CMD_CACHE -> BlockDevice.PREFETCH_BUFFER_BYTES; // a cluster's copy, however short the range
            default -> 0;
        };
    }

    /** The request header, or null on DISC. A malformed or oversized WRITE breaks the stream: ProtocolViolation. */
    private Request next(RequestStream incoming) throws IOException {
        ByteBuffer h = incoming.next(28);
        if (h.getInt() != REQUEST_MAGIC) {
            throw new ProtocolViolation("bad request magic");
        }
        int flags = Short.toUnsignedInt(h.getShort());
        int type = Short.toUnsignedInt(h.getShort());
        long cookie = h.getLong();
        long offset = h.getLong();
        long length = Integer.toUnsignedLong(h.getInt());
        if (type == CMD_DISC) {
            return null;
        }
        // The payload cannot be skipped safely if it is larger than we accept: drop the connection.
        if (type == CMD_WRITE && length > MAX_PAYLOAD) {
            throw new ProtocolViolation("WRITE of " + length + " bytes exceeds the 32 MiB maximum");
        }
        return new Request(flags, type, cookie, offset, length, null);
    }

    /** What a server does with a defect: a warning with the stack, the request answered with an error. */
    static void logDefect(RuntimeException e) {
        LOG.warn("NBD request failed (a defect)", e);
    }

    /** {@code h} with its WRITE payload read from the stream (the payload's bytes are already budgeted). */
    private Request withPayload(Request h, RequestStream incoming) throws IOException {
        if (h.type() != CMD_WRITE) {
            return h;
        }
        ByteBuffer payload = buffers.take((int) h.length());
        try {
            incoming.readFully(payload);
        } catch (IOException | RuntimeException e) {
            buffers.give(payload);
            throw e;
        }
        return new Request(h.flags(), h.type(), h.cookie(), h.offset(), h.length(), payload.flip());
    }

    /**
     * What a request gives back once its reply is on the socket or cannot be sent: its WRITE payload, its READ
     * data, its budget and its slot. Runs at most once, whichever of the reply and a failure gets here first.
     */
    private final class Release implements Runnable {
        private final Request r;
        private final long cost;
        private final AtomicBoolean done = new AtomicBoolean();
        /** A READ's reply data; set by the request's thread before the reply is queued. */
        private ByteBuffer data;

        Release(Request r, long cost) {
            this.r = r;
            this.cost = cost;
        }

        /** {@code b} goes back to the pool with the rest (so a reply still queued never sees it reused). */
        ByteBuffer hold(ByteBuffer b) {
            data = b;
            return b;
        }

        @Override
        public void run() {
            if (done.compareAndSet(false, true)) {
                if (data != null) {
                    buffers.give(data);
                }
                release(r, cost);
            }
        }
    }

    /**
     * Runs one request and queues its reply, which gives back what the request holds once sent. Exactly one reply
     * is queued, the last thing this does; if something unexpected is thrown before it, the request's resources
     * are given back unsent (the client then waits for that cookie; the defect is logged where it is caught).
     */
    private void serve(Request r, Release done) {
        try {
            try {
                execute(r, done);
            } catch (IOException e) {
                int errno = Errors.errno(e);
                if (errno == EIO && e instanceof ImageException) {
                    // One line, as qemu-nbd's: the image's own refusal (corrupt, say) is no defect to trace.
                    LOG.warn("NBD request type {} at {}+{} failed: {}", r.type(), r.offset(), r.length(),
                            e.getMessage());
                } else if (errno == EIO) {
                    LOG.warn("NBD request type {} at {}+{} failed", r.type(), r.offset(), r.length(), e);
                }
                replies.error(r.cookie(), errno, String.valueOf(e.getMessage()), done);
            } catch (RuntimeException e) {
                defects.accept(e);
                replies.error(r.cookie(), Errors.errno(e), String.valueOf(e.getMessage()), done);
            }
        } catch (Throwable t) {
            done.run();
            throw t;
        }
    }

    /**
     * A structured READ without DF, as qemu-nbd answers it: the runs that read as zeroes as hole chunks, unread, the
     * others read into {@code data} and sent as data chunks, DONE on the last ({@link Extents#zeroRuns}); all read
     * before any is queued, so a failure is still one error reply. A range of data alone is one chunk, as with DF.
     */
    private void readSparse(Request r, BlockDevice dev, ByteBuffer data, Release done) throws IOException {
        List<Extents.Extent> runs = Extents.zeroRuns(dev, r.offset(), r.length());
        int at = 0; // each run's place in data, and on the device from r.offset()
        for (Extents.Extent run : runs) {
            if (run.flags() == 0) {
                dev.read(r.offset() + at, data.slice(at, (int) run.length()));
            }
            at += (int) run.length();
        }
        at = 0;
        for (int i = 0; i < runs.size(); i++) {
            Extents.Extent run = runs.get(i);
            boolean last = i == runs.size() - 1;
            Runnable sent = last ? done : () -> { };
            if (run.flags() == 0) {
                replies.data(r.cookie(), r.offset() + at, data.slice(at, (int) run.length()), last, sent);
            } else {
                replies.hole(r.cookie(), r.offset() + at, (int) run.length(), last, sent);
            }
            at += (int) run.length();
        }
    }

    private void execute(Request r, Release done) throws IOException {
        BlockDevice dev = export.device();
        boolean writes = r.type() == CMD_WRITE || r.type() == CMD_TRIM || r.type() == CMD_WRITE_ZEROES;
        if (writes && export.readOnly()) {
            replies.error(r.cookie(), EPERM, "export is read-only", done);
            return;
        }
        if (r.type() != CMD_FLUSH && !r.inside(dev.size())) {
            replies.error(r.cookie(), EINVAL, "request outside the export", done); // qemu-nbd 7.2's, writes too
            return;
        }
        int unsupported = r.flags() & ~validFlags(r.type());
        if (unsupported != 0) {
            replies.error(r.cookie(), EINVAL, "unsupported flags for command " + r.type() + " (got 0x"
                    + Integer.toHexString(r.flags()) + ")", done);
            return;
        }
        if ((r.type() == CMD_READ || r.type() == CMD_CACHE) && r.length() > MAX_PAYLOAD) { // qemu-nbd's limit
            replies.error(r.cookie(), EINVAL, (r.type() == CMD_READ ? "READ" : "CACHE") + " longer than 32 MiB", done);
            return;
        }
        switch (r.type()) {
            case CMD_READ -> {
                if (r.has(CMD_FLAG_FUA)) {
                    dev.flush(); // as qemu-nbd: what was written before is durable before it is read
                }
                ByteBuffer data = done.hold(buffers.take((int) r.length()));
                if (session.structuredReplies() && !r.has(CMD_FLAG_DF) && data.hasRemaining()) {
                    readSparse(r, dev, data, done);
                    return;
                }
                if (data.hasRemaining()) {
                    dev.read(r.offset(), data);
                }
                replies.data(r.cookie(), r.offset(), data.flip(), done);
            }
            case CMD_WRITE -> {
                if (r.payload().hasRemaining()) {
                    dev.write(r.offset(), r.payload());
                }
                finishWrite(r, dev, done, export.writeThrough());
            }
            case CMD_TRIM -> {
                if (r.length() > 0) {
                    dev.discard(r.offset(), r.length());
                }
                finishWrite(r, dev, done, false); // QEMU's writethrough makes writes durable, not discards
            }
            case CMD_WRITE_ZEROES -> {
                // NO_HOLE: the zeroes must be written, not unmapped. FAST_ZERO: fail where zeroing would write
                // zero bytes (QEMU's client sends it for BDRV_REQ_NO_FALLBACK, qemu-io's write -z -n).
                boolean mayUnmap = !r.has(CMD_FLAG_NO_HOLE);
                if (r.has(CMD_FLAG_FAST_ZERO)) {
                    if (r.length() > 0 && !dev.writeZeroesFast(r.offset(), r.length(), mayUnmap)) {
                        replies.error(r.cookie(), ENOTSUP, "zeroing would write zeroes", done);
                        return;
                    }
                } else if (r.length() > 0) {
                    dev.writeZeroes(r.offset(), r.length(), mayUnmap);
                }
                finishWrite(r, dev, done, export.writeThrough());
            }
            case CMD_CACHE -> {
                // A hint: on a read-only export nothing is copied (qemu-nbd 7.2 fails it with EPERM there).
                if (r.length() > 0 && !export.readOnly()) {
                    dev.prefetch(r.offset(), r.length());
                }
                replies.ok(r.cookie(), done); // FUA taken and ignored, as qemu-nbd does for CACHE
            }
            case CMD_FLUSH -> {
                dev.flush();
                replies.ok(r.cookie(), done);
            }
            case CMD_BLOCK_STATUS -> {
                if (session.contexts() == 0 || r.length() == 0) {
                    replies.error(r.cookie(), EINVAL, "no metadata context selected, or empty range", done);
                    return;
                }
                boolean one = r.has(CMD_FLAG_REQ_ONE);
                // Every context's extents first, so that a failure sends an error alone; then one chunk per context
                // in qemu-nbd's order, the last one DONE (all from this thread: they go out in order).
                Map<Integer, List<Extents.Extent>> chunks = new LinkedHashMap<>();
                if (session.baseAllocation()) {
                    chunks.put(BASE_ALLOCATION_ID, Extents.of(dev, r.offset(), r.length(), one));
                }
                if (session.allocationDepth()) {
                    chunks.put(ALLOCATION_DEPTH_ID, Extents.depths(dev, r.offset(), r.length(), one));
                }
                if (session.dirtyBitmap()) {
                    chunks.put(DIRTY_BITMAP_ID, Extents.of(export.bitmap().runs(), r.offset(), r.length(), one));
                }
                int left = chunks.size();
                for (Map.Entry<Integer, List<Extents.Extent>> chunk : chunks.entrySet()) {
                    boolean last = --left == 0;
                    replies.blockStatus(r.cookie(), chunk.getKey(), chunk.getValue(), last, last ? done : () -> { });
                }
            }
            default -> replies.error(r.cookie(), EINVAL, "unknown command " + r.type(), done);
        }
    }

    /**
     * The command flags a request of {@code type} may carry, as qemu-nbd takes them: FUA on any, DF on a READ once
     * structured replies are on, NO_HOLE and FAST_ZERO on WRITE_ZEROES, REQ_ONE on BLOCK_STATUS.
     */
    private int validFlags(int type) {
        return CMD_FLAG_FUA | switch (type) {
            case CMD_READ -> session.structuredReplies() ? CMD_FLAG_DF : 0;
            case CMD_WRITE_ZEROES -> CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO;
            case CMD_BLOCK_STATUS -> CMD_FLAG_REQ_ONE;
            default -> 0;
        };
    }

    /** Replies to a write-type request once it is durable where the client asked (FUA) or {@code durable} says. */
    private void finishWrite(Request r, BlockDevice dev, Release done, boolean durable) throws IOException {
        if (r.has(CMD_FLAG_FUA) || durable) {
            dev.flush();
        }
        replies.ok(r.cookie(), done);
    }
}
