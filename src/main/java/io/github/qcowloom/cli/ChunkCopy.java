package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.image.ZeroData;
import io.github.qcowloom.storage.Zeroes;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongConsumer;

/**
 * convert's copy pipeline, as qemu-img convert's: block status drives the work. A planner walks the source's block
 * status and hands out pieces of at most one chunk, ending on chunk boundaries (so writes are large and aligned);
 * {@code requests} virtual threads (qemu-img's {@code -m}) each take a piece, read it with one request (which the
 * image turns into one system call per run of host-contiguous clusters) into their own reused direct buffer (the
 * pool: {@code requests} buffers of one chunk, nothing allocated per piece), then have it written: in guest order
 * unless out-of-order writes are allowed (qemu-img's {@code -W}), by whichever worker is writing then.
 *
 * <p>Ranges that read as zeroes are never read. A sink that keeps them as holes ({@link Settings#zeroesToSink}
 * false: a fresh raw file or qcow2 image with no backing file) never sees them; otherwise the pieces are the fixed
 * chunks, whose zero parts are filled in without reading, and each chunk says whether it was all zeroes.
 *
 * <p>Lock discipline: {@code planLock} guards the planner's position and its cached block status; it is held only
 * while a piece is cut, never during I/O of guest data. In-order writes are run through {@link WriteTurns}, which
 * may make a piece's write on the worker of an earlier one; the worker reuses its buffer once its write has run.
 */
final class ChunkCopy {
    /** Bytes of one piece at most: qemu-img convert's buffer size. */
    static final int CHUNK = 2 << 20;
    /** qemu-img convert's default number of parallel requests, and its maximum. */
    static final int DEFAULT_REQUESTS = 8;
    static final int MAX_REQUESTS = 16;
    /** Buffers start on this boundary, as O_DIRECT files need. */
    private static final int ALIGN = 4096;
    /** How far one block status query looks ahead; the answer is cached until the planner passes it. */
    private static final long STATUS_SPAN = 1L << 30;

    /**
     * How to run the copy.
     *
     * @param chunk bytes of a piece at most (a multiple of the target's cluster size for sinks that need whole
     *     clusters)
     * @param requests pieces in flight at once (each with its buffer)
     * @param inOrder pieces are written in guest order (qemu-img's default); false is {@code -W}
     * @param zeroesToSink the sink also gets the ranges that read as zeroes (as fixed chunks)
     * @param limit holds each piece the sink writes back until the bytes of those written before it are within the
     *     rate (qemu-img convert's -r, a throttle on the target's writes: what is passed over costs nothing)
     */
    record Settings(int chunk, int requests, boolean inOrder, boolean zeroesToSink, RateLimit limit) {
        Settings {
            if (chunk < 1 || requests < 1) {
                throw new IllegalArgumentException("chunk " + chunk + ", requests " + requests);
            }
        }

        Settings(int chunk, int requests, boolean inOrder, boolean zeroesToSink) {
            this(chunk, requests, inOrder, zeroesToSink, new RateLimit(0));
        }
    }

    /** Receives the pieces of the source; called from many threads. */
    interface Sink {
        /**
         * A piece (position 0 to limit) of the source at {@code offset}, on its worker before its turn to write
         * (work such as compression goes here); returns the write to make in turn, which may still use
         * {@code chunk}. {@code zero}: the source reported all of it as reading zeroes, so nothing was read and the
         * piece holds zeroes; false says nothing either way.
         */
        Write prepare(long offset, ByteBuffer chunk, boolean zero) throws IOException;

        /**
         * Copies the piece of {@code length} bytes at {@code offset} another way, unread (convert -C's kernel copy:
         * {@link CopyOffload}); false if it did not, and the piece is read and prepared as usual. On the piece's
         * worker, before its turn.
         */
        default boolean offload(long offset, int length) throws IOException {
            return false;
        }
    }

    /** What a piece writes, when its turn comes; with in-order writes, on whichever worker is writing then. */
    interface Write {
        Write NONE = () -> { };

        void run() throws IOException;
    }

    /** One piece handed out by the planner; {@code turn} orders its write. */
    private record Piece(long turn, long offset, int length) {
    }

    private final BlockDevice src;
    private final long size;
    private final Settings settings;
    private final Sink sink;
    private final LongConsumer progress;
    private final WriteTurns turns = new WriteTurns();
    private final ReentrantLock planLock = new ReentrantLock();
    /** Bytes of the pieces handed to the sink's writes so far, for the rate limit. */
    private final AtomicLong written = new AtomicLong();
    private long planned;
    private long turn;
    /** The cached block status: it holds from {@code planned} to {@code statusEnd}. */
    private long statusEnd;
    private boolean statusZero;

    private ChunkCopy(BlockDevice src, Settings settings, Sink sink, LongConsumer progress) {
        this.src = src;
        this.size = src.size();
        this.settings = settings;
        this.sink = sink;
        this.progress = progress;
    }

    /** Copies the whole source into {@code sink}; {@code progress} gets the bytes done after each piece. */
    static void run(BlockDevice src, Settings settings, Sink sink, LongConsumer progress) throws IOException {
        new ChunkCopy(src, settings, sink, progress).run();
    }

    private void run() throws IOException {
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<Void>> workers = new ArrayList<>();
            for (int w = 0; w < settings.requests(); w++) {
                workers.add(pool.submit(() -> {
                    try {
                        work();
                    } catch (IOException | RuntimeException | Error e) {
                        turns.abort(e);
                        throw e;
                    }
                    return null;
                }));
            }
            for (Future<Void> f : workers) {
                f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new IOException(e.getCause());
        }
    }

    private void work() throws IOException {
        // Direct: FileChannel copies heap buffers through a temporary direct one on every call.
        ByteBuffer buf = ByteBuffer.allocateDirect(settings.chunk() + ALIGN).alignedSlice(ALIGN);
        for (Piece p = next(); p != null; p = next()) {
            if (sink.offload(p.offset(), p.length())) {
                if (settings.inOrder()) {
                    turns.write(p.turn(), Write.NONE); // the pieces after it wait for its turn to pass
                }
                progress.accept(p.length());
                continue;
            }
            buf.clear().limit(p.length());
            boolean zero;
            if (settings.zeroesToSink()) {
                zero = readData(src, p.offset(), buf);
            } else {
                src.read(p.offset(), buf.duplicate()); // block status called it data
                zero = false;
            }
            Write write = sink.prepare(p.offset(), buf, zero);
            if (write != Write.NONE) {
                settings.limit().await(written.getAndAdd(p.length()));
            }
            if (settings.inOrder()) {
                turns.write(p.turn(), write); // may run on the worker of an earlier piece
            } else {
                write.run();
            }
            progress.accept(p.length());
        }
    }

    /** Cuts the next piece, or null at the end; ranges of zeroes the sink does not want are passed over here. */
    private Piece next() throws IOException {
        planLock.lock();
        try {
            while (planned < size) {
                if (settings.zeroesToSink()) {
                    int n = (int) Math.min(settings.chunk(), size - planned);
                    Piece p = new Piece(turn++, planned, n); // readData asks block status itself
                    planned += n;
                    return p;
                }
                if (planned >= statusEnd) {
                    BlockStatus s = src.blockStatus(planned, Math.min(STATUS_SPAN, size - planned));
                    statusEnd = planned + s.length();
                    statusZero = s.zero();
                }
                if (statusZero) {
                    progress.accept(statusEnd - planned);
                    planned = statusEnd;
                    continue;
                }
                long chunkEnd = Math.min(size, (planned / settings.chunk() + 1) * settings.chunk());
                long end = Math.min(statusEnd, chunkEnd);
                // Data runs that follow one another (clusters apart on the host, or compressed) join the piece up
                // to the chunk's end: one read, one write. A run of zeroes stops it and stays cached.
                while (end == statusEnd && end < chunkEnd) {
                    BlockStatus s = src.blockStatus(end, Math.min(STATUS_SPAN, size - end));
                    statusEnd = end + s.length();
                    statusZero = s.zero();
                    if (statusZero) {
                        break;
                    }
                    end = Math.min(statusEnd, chunkEnd);
                }
                Piece p = new Piece(turn++, planned, (int) (end - planned));
                planned = end;
                return p;
            }
            return null;
        } finally {
            planLock.unlock();
        }
    }

    /**
     * Fills {@code buf} (position 0 to limit) with the source's bytes at {@code offset}, reading only what block
     * status reports as data and filling the rest with zeroes; true if that was all of it (nothing was read).
     */
    static boolean readData(BlockDevice src, long offset, ByteBuffer buf) throws IOException {
        boolean zero = true;
        int n = buf.limit();
        for (int done = 0; done < n; ) {
            BlockStatus status = src.blockStatus(offset + done, n - done);
            int length = (int) status.length();
            ByteBuffer part = buf.slice(done, length);
            if (status.zero()) {
                Zeroes.fill(part);
            } else {
                src.read(offset + done, part);
                zero = false;
            }
            done += length;
        }
        return zero;
    }

    /** Writes one part of a piece. */
    interface PartWriter {
        void write(long offset, ByteBuffer part) throws IOException;
    }

    /**
     * Writes the parts of {@code buf} (position 0 to limit, the source at {@code offset}) that are not zeroes, as
     * qemu-img convert's sparse detection does: the piece is cut into granules of {@code granule} bytes aligned to
     * the guest offset, and each maximal run of granules that hold a non-zero byte is written with one call.
     */
    static void writeNonZero(long offset, ByteBuffer buf, int granule, PartWriter writer) throws IOException {
        writeNonZero(offset, buf, granule, writer, (at, length) -> { });
    }

    /** Writes the zero runs between them. */
    @FunctionalInterface
    interface ZeroWriter {
        void writeZeroes(long offset, long length) throws IOException;
    }

    /**
     * As {@link #writeNonZero(long, ByteBuffer, int, PartWriter)}, and gives each maximal run of zero granules to
     * {@code zeroes}.
     */
    static void writeNonZero(long offset, ByteBuffer buf, int granule, PartWriter writer, ZeroWriter zeroes)
            throws IOException {
        ByteBuffer view = buf.duplicate();
        ByteBuffer zeroBytes = ZeroData.zeroes();
        int end = buf.limit();
        int runStart = 0;
        boolean runIsData = false;
        for (int at = 0; at < end; ) {
            int next = (int) Math.min(end, at + granule - (offset + at) % granule);
            boolean data = !ZeroData.isZero(view, zeroBytes, at, next);
            if (at > runStart && data != runIsData) {
                flushRun(offset, buf, runStart, at, runIsData, writer, zeroes);
                runStart = at;
            }
            runIsData = data;
            at = next;
        }
        if (end > runStart) {
            flushRun(offset, buf, runStart, end, runIsData, writer, zeroes);
        }
    }

    private static void flushRun(long offset, ByteBuffer buf, int from, int to, boolean data, PartWriter writer,
            ZeroWriter zeroes) throws IOException {
        if (data) {
            writer.write(offset + from, buf.slice(from, to - from));
        } else {
            zeroes.writeZeroes(offset + from, to - from);
        }
    }
}
