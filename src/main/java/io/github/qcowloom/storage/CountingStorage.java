package io.github.qcowloom.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.LongAdder;

/** A {@link Storage} that forwards every call and counts the completed ones, for tests that assert I/O patterns. */
public final class CountingStorage extends ForwardingStorage {
    /**
     * A snapshot of the counters; each counts calls that returned normally. {@code flushes} counts every host sync,
     * {@code rangeFlushes} those of them that were of a range ({@link Storage#flushRange}).
     */
    public record Counts(long reads, long bytesRead, long writes, long bytesWritten, long flushes, long rangeFlushes,
            long punchHoles, long writeZeroes, long setLengths) {
        /** What happened since {@code earlier}. */
        public Counts minus(Counts earlier) {
            return new Counts(reads - earlier.reads, bytesRead - earlier.bytesRead, writes - earlier.writes,
                    bytesWritten - earlier.bytesWritten, flushes - earlier.flushes,
                    rangeFlushes - earlier.rangeFlushes, punchHoles - earlier.punchHoles,
                    writeZeroes - earlier.writeZeroes, setLengths - earlier.setLengths);
        }
    }

    private final LongAdder reads = new LongAdder();
    private final LongAdder bytesRead = new LongAdder();
    private final LongAdder writes = new LongAdder();
    private final LongAdder bytesWritten = new LongAdder();
    private final LongAdder flushes = new LongAdder();
    private final LongAdder rangeFlushes = new LongAdder();
    private final LongAdder punchHoles = new LongAdder();
    private final LongAdder writeZeroes = new LongAdder();
    private final LongAdder setLengths = new LongAdder();

    public CountingStorage(Storage delegate) {
        super(delegate);
    }

    /** The wrapped storage. */
    public Storage delegate() {
        return inner();
    }

    /** The counters now; not atomic across counters while calls are in flight. */
    public Counts counts() {
        return new Counts(reads.sum(), bytesRead.sum(), writes.sum(), bytesWritten.sum(), flushes.sum(),
                rangeFlushes.sum(), punchHoles.sum(), writeZeroes.sum(), setLengths.sum());
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        int n = super.read(dst, position);
        reads.increment();
        bytesRead.add(n);
        return n;
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        int n = src.remaining();
        super.write(src, position);
        writes.increment();
        bytesWritten.add(n);
    }

    @Override
    public void flush() throws IOException {
        super.flush();
        flushes.increment();
    }

    /** Counted with the flushes (a host sync too), and apart. */
    @Override
    public void flushRange(long position, long length) throws IOException {
        super.flushRange(position, length);
        flushes.increment();
        rangeFlushes.increment();
    }

    @Override
    public void punchHole(long position, long length) throws IOException {
        super.punchHole(position, length);
        punchHoles.increment();
    }

    /** Counted with the punched holes. */
    @Override
    public boolean discard(long position, long length) throws IOException {
        punchHoles.increment();
        return super.discard(position, length);
    }

    @Override
    public void writeZeroes(long position, long length) throws IOException {
        super.writeZeroes(position, length);
        writeZeroes.increment();
    }

    /** Counted with the zeroes written: the range reads as zeroes and takes space, as after those. */
    @Override
    public void reserve(long position, long length) throws IOException {
        super.reserve(position, length);
        writeZeroes.increment();
    }

    @Override
    public void setLength(long length) throws IOException {
        super.setLength(length);
        setLengths.increment();
    }
}
