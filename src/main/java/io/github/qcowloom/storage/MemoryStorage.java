package io.github.qcowloom.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.Arrays;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A growable in-memory file for tests and crash simulation. Size changes are bounded by a limit so a bogus
 * length fails with an {@link IOException} instead of exhausting the heap; bytes past the backing array but
 * inside the size read as zeroes, so extending and zeroing allocate nothing.
 */
public final class MemoryStorage implements Storage {
    /** Limit of the constructors that take none. */
    public static final long DEFAULT_LIMIT = 1L << 30;
    /** Largest supported limit: the largest Java array. */
    public static final long MAX_LIMIT = Integer.MAX_VALUE - 8;

    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final long limit;
    private final boolean readOnly;
    private final LongAdder flushes = new LongAdder();
    private volatile boolean closed;
    // Guarded by lock. Invariant: data[size, data.length) is all zero, so growing needs no clearing.
    private byte[] data;
    private long size;

    /** An empty file limited to {@link #DEFAULT_LIMIT} bytes. */
    public MemoryStorage() {
        this(DEFAULT_LIMIT);
    }

    /** An empty file limited to {@code limit} bytes (at most {@link #MAX_LIMIT}). */
    public MemoryStorage(long limit) {
        this(new byte[0], limit, false);
    }

    /** A writable file holding a copy of {@code contents}, limited to the larger of its length and {@link #DEFAULT_LIMIT}. */
    public MemoryStorage(byte[] contents) {
        this(contents, Math.max(contents.length, DEFAULT_LIMIT), false);
    }

    /** A file holding a copy of {@code contents}, limited to {@code limit} bytes, refusing writes if {@code readOnly}. */
    public MemoryStorage(byte[] contents, long limit, boolean readOnly) {
        if (limit < 0 || limit > MAX_LIMIT) {
            throw new IllegalArgumentException("limit out of range [0, " + MAX_LIMIT + "]: " + limit);
        }
        if (contents.length > limit) {
            throw new IllegalArgumentException("contents (" + contents.length + " bytes) exceed the limit " + limit);
        }
        this.limit = limit;
        this.readOnly = readOnly;
        this.data = contents.clone();
        this.size = contents.length;
    }

    /** A read-only file holding a copy of {@code contents}. */
    public static MemoryStorage readOnlyCopy(byte[] contents) {
        return new MemoryStorage(contents, Math.max(contents.length, DEFAULT_LIMIT), true);
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        Ranges.checkPosition(position);
        lock.readLock().lock();
        try {
            ensureOpen();
            int n = (int) Math.min(dst.remaining(), Math.max(0, size - position));
            int stored = (int) Math.min(n, Math.max(0, data.length - position));
            dst.put(data, (int) Math.min(position, data.length), stored);
            Zeroes.put(dst, n - stored);
            return n;
        } finally {
            lock.readLock().unlock();
        }
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        Ranges.checkPosition(position);
        lock.writeLock().lock();
        try {
            long end = checkWritable(position, src.remaining());
            if (src.hasRemaining()) { // an empty write extends nothing, as with pwrite
                ensureCapacity(end);
                src.get(data, (int) position, src.remaining());
                size = Math.max(size, end);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Counts the call; memory needs no syncing. */
    @Override
    public void flush() throws IOException {
        ensureOpen();
        flushes.increment();
    }

    /** Zeroes the part of the range inside the file; the size does not change. */
    @Override
    public void punchHole(long position, long length) throws IOException {
        Ranges.checkRange(position, length);
        lock.writeLock().lock();
        try {
            ensureWritable();
            zeroStored(position, Math.min(position + length, size));
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Zeroes the range inside the file, as {@link #punchHole}: of what a discard may leave, what tests notice. */
    @Override
    public boolean discard(long position, long length) throws IOException {
        punchHole(position, length);
        return true;
    }

    /** Zeroes the range, extending the file if it reaches past the end. */
    @Override
    public void writeZeroes(long position, long length) throws IOException {
        Ranges.checkRange(position, length);
        lock.writeLock().lock();
        try {
            long end = checkWritable(position, length);
            if (length > 0) {
                zeroStored(position, end);
                size = Math.max(size, end);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public long size() throws IOException {
        lock.readLock().lock();
        try {
            ensureOpen();
            return size;
        } finally {
            lock.readLock().unlock();
        }
    }

    @Override
    public void extendTo(long end) throws IOException {
        lock.writeLock().lock();
        try {
            if (size < end) {
                setLength(end);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public void setLength(long length) throws IOException {
        Ranges.checkPosition(length);
        lock.writeLock().lock();
        try {
            checkWritable(length, 0);
            if (length < data.length) {
                // Drop the tail rather than zero it: keeps the invariant and gives the memory back.
                data = Arrays.copyOf(data, (int) length);
            }
            size = length;
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public int alignment() {
        return 1;
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    /** Refuses further I/O; {@link #snapshot()} still works. */
    @Override
    public void close() {
        closed = true;
    }

    /** A copy of the whole file. */
    public byte[] snapshot() {
        lock.readLock().lock();
        try {
            return Arrays.copyOf(data, (int) size);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** How many times {@link #flush()} was called. */
    public long flushCount() {
        return flushes.sum();
    }

    private void ensureCapacity(long end) {
        if (end > data.length) {
            long grown = Math.min(limit, Math.max(end, 2L * data.length));
            data = Arrays.copyOf(data, (int) grown);
        }
    }

    private void zeroStored(long from, long to) {
        if (from < to && from < data.length) {
            Arrays.fill(data, (int) from, (int) Math.min(to, data.length), (byte) 0);
        }
    }

    /** Checks a write of {@code length} bytes at {@code position} may happen and returns its end. */
    private long checkWritable(long position, long length) throws IOException {
        ensureWritable();
        if (length > limit || position > limit - length) {
            throw new IOException("in-memory storage limit of " + limit + " bytes exceeded: "
                    + length + " bytes at " + position);
        }
        return position + length;
    }

    private void ensureWritable() throws IOException {
        ensureOpen();
        if (readOnly) {
            throw new IOException("storage is read-only");
        }
    }

    private void ensureOpen() throws ClosedChannelException {
        if (closed) {
            throw new ClosedChannelException();
        }
    }

}
