package io.github.qcowloom.crashkit;

import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.Stream;

/**
 * A simulated disk that records every write, size change and flush, and afterwards produces the images a power
 * loss at any point could have left (SQLite's crash VFS, CrashMonkey's replay).
 *
 * <p>Reads see every write issued so far, as a page cache does. Each completed {@link #flush()} closes an epoch:
 * a crash keeps all closed epochs and, of the open one, any subset of its operations in their original order that
 * holds every write a completed {@link #flushRange} covered.
 * {@link #punchHole}, {@link #discard} and {@link #writeZeroes} are recorded as writes of zeroes. Safe for concurrent use: the log
 * order is the order in which operations took effect.
 */
public final class CrashSimStorage implements Storage {
    private final ReentrantLock lock = new ReentrantLock();
    private final byte[] initial;
    private final MemoryStorage current;
    // Guarded by lock.
    private final List<LoggedOp> log = new ArrayList<>();
    private long flushes;
    private volatile boolean closed;

    /** A disk holding a copy of {@code initial}, which is durable. */
    public CrashSimStorage(byte[] initial) {
        this.initial = initial.clone();
        this.current = new MemoryStorage(initial);
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        ensureOpen();
        return current.read(dst, position);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        ensureOpen();
        byte[] data = new byte[src.remaining()];
        src.duplicate().get(data);
        lock.lock();
        try {
            current.write(src, position);
            if (data.length > 0) {
                log.add(new LoggedOp.Write(position, data));
            }
        } finally {
            lock.unlock();
        }
    }

    /** Records a completed flush, which closes the current epoch. */
    @Override
    public void flush() throws IOException {
        ensureOpen();
        lock.lock();
        try {
            log.add(new LoggedOp.Flush());
            flushes++;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Records a completed ranged flush: the writes before it that lie inside the range survive a later crash, the
     * others stay in their epoch's subsets.
     */
    @Override
    public void flushRange(long position, long length) throws IOException {
        ensureOpen();
        lock.lock();
        try {
            log.add(new LoggedOp.RangeFlush(position, length));
        } finally {
            lock.unlock();
        }
    }

    /** Recorded as a write of zeroes over the part of the range inside the file. */
    @Override
    public void punchHole(long position, long length) throws IOException {
        ensureOpen();
        lock.lock();
        try {
            long inside = Math.max(0, Math.min(length, current.size() - position));
            current.punchHole(position, length);
            if (inside > 0) {
                log.add(new LoggedOp.Zero(position, inside));
            }
        } finally {
            lock.unlock();
        }
    }

    /** A punched hole: of what a discard may leave, the zeroes are what a crash test notices. */
    @Override
    public boolean discard(long position, long length) throws IOException {
        punchHole(position, length);
        return true;
    }

    /** Recorded as a write of zeroes. */
    @Override
    public void writeZeroes(long position, long length) throws IOException {
        ensureOpen();
        lock.lock();
        try {
            current.writeZeroes(position, length);
            if (length > 0) {
                log.add(new LoggedOp.Zero(position, length));
            }
        } finally {
            lock.unlock();
        }
    }

    @Override
    public long size() throws IOException {
        ensureOpen();
        return current.size();
    }

    @Override
    public void extendTo(long end) throws IOException {
        ensureOpen();
        lock.lock();
        try {
            // Recorded as the setLength it is; writes hold the same lock, so none extends the file meanwhile.
            if (current.size() < end) {
                current.setLength(end);
                log.add(new LoggedOp.SetLength(end));
            }
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void setLength(long length) throws IOException {
        ensureOpen();
        lock.lock();
        try {
            current.setLength(length);
            log.add(new LoggedOp.SetLength(length));
        } finally {
            lock.unlock();
        }
    }

    @Override
    public int alignment() {
        return 1;
    }

    @Override
    public boolean readOnly() {
        return false;
    }

    /** Refuses further I/O; the log and the crash states stay available. */
    @Override
    public void close() {
        closed = true;
    }

    /** Operations recorded so far, flushes included. */
    public int operationCount() {
        lock.lock();
        try {
            return log.size();
        } finally {
            lock.unlock();
        }
    }

    /** Flushes completed so far: a workload notes this after its own flush returns (see {@link GuestHistory}). */
    public long flushCount() {
        lock.lock();
        try {
            return flushes;
        } finally {
            lock.unlock();
        }
    }

    /** The image as the page cache sees it now: every issued operation applied. */
    public byte[] currentImage() {
        return current.snapshot();
    }

    /** The crash states of the log recorded so far, with {@link CrashOptions#defaults()}. */
    public Stream<CrashState> crashStates() {
        return crashStates(CrashOptions.defaults());
    }

    /**
     * The distinct crash states of the log recorded so far: every prefix at an operation boundary, then subsets
     * of each epoch (or only the last, see {@link CrashOptions#everyEpoch()}), in a lazily computed stream.
     */
    public Stream<CrashState> crashStates(CrashOptions options) {
        List<LoggedOp> copy;
        lock.lock();
        try {
            copy = List.copyOf(log);
        } finally {
            lock.unlock();
        }
        return new CrashStates(initial, copy, options).stream();
    }

    private void ensureOpen() throws ClosedChannelException {
        if (closed) {
            throw new ClosedChannelException();
        }
    }
}
