package io.github.qcowloom.testing;

import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongPredicate;

/**
 * A {@link Storage} that forwards every call, except that it can park the next write at a chosen position until the
 * test releases it: the thread that issued the write waits before the write reaches the delegate, so that a test can
 * run other requests in that gap and force an interleaving.
 */
public final class ParkingStorage implements Storage {
    /** One parked write: the test waits for its arrival, then lets it through. */
    public static final class Gate {
        private final LongPredicate position;
        private final CountDownLatch arrived = new CountDownLatch(1);
        private final CountDownLatch released = new CountDownLatch(1);
        private volatile Thread parked;

        private Gate(LongPredicate position) {
            this.position = position;
        }

        /** Waits until a write reached the gate; returns the thread that issued it, now parked. */
        public Thread awaitArrival() throws InterruptedException {
            if (!arrived.await(30, TimeUnit.SECONDS)) {
                throw new AssertionError("no write reached the gate");
            }
            return parked;
        }

        /** Lets the parked write (or the next one to arrive) through. */
        public void release() {
            released.countDown();
        }
    }

    private final Storage delegate;
    private final AtomicReference<Gate> writeGate = new AtomicReference<>();

    public ParkingStorage(Storage delegate) {
        this.delegate = delegate;
    }

    /** Parks the next write whose position matches, until {@link Gate#release}; later writes pass. */
    public Gate parkNextWrite(LongPredicate position) {
        Gate g = new Gate(position);
        writeGate.set(g);
        return g;
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        Gate g = writeGate.get();
        if (g != null && g.position.test(position) && writeGate.compareAndSet(g, null)) {
            g.parked = Thread.currentThread();
            g.arrived.countDown();
            try {
                if (!g.released.await(30, TimeUnit.SECONDS)) {
                    throw new IOException("parked write at " + position + " never released");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while parked");
            }
        }
        delegate.write(src, position);
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        return delegate.read(dst, position);
    }

    @Override
    public void flush() throws IOException {
        delegate.flush();
    }

    @Override
    public void punchHole(long position, long length) throws IOException {
        delegate.punchHole(position, length);
    }

    @Override
    public void writeZeroes(long position, long length) throws IOException {
        delegate.writeZeroes(position, length);
    }

    @Override
    public long size() throws IOException {
        return delegate.size();
    }

    @Override
    public void setLength(long length) throws IOException {
        delegate.setLength(length);
    }

    @Override
    public void extendTo(long end) throws IOException {
        delegate.extendTo(end);
    }

    @Override
    public int alignment() {
        return delegate.alignment();
    }

    @Override
    public boolean readOnly() {
        return delegate.readOnly();
    }

    @Override
    public void event(StorageEvent event) {
        delegate.event(event);
    }

    @Override
    public void close() throws IOException {
        delegate.close();
    }
}
