package io.github.qcowloom.testing;

import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A {@link Storage} that forwards every call and can park the thread of one chosen write before it reaches the
 * storage, until the test releases it: races between requests are forced in tests this way, never with switches in
 * production code.
 */
public final class GatedStorage implements Storage {
    /** Chooses the write to park, by where it goes and how long it is. */
    @FunctionalInterface
    public interface WriteTest {
        boolean matches(long position, int length);
    }

    /** One armed gate: parks the first matching write. */
    public static final class Gate {
        private static final long TIMEOUT_SECONDS = 30;
        private final WriteTest test;
        private final AtomicBoolean taken = new AtomicBoolean();
        private final CountDownLatch reached = new CountDownLatch(1);
        private final CountDownLatch release = new CountDownLatch(1);

        private Gate(WriteTest test) {
            this.test = test;
        }

        /** Waits until a write is parked at the gate; false if none came in time. */
        public boolean awaitParked() throws InterruptedException {
            return reached.await(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        }

        /** Lets the parked write (and any later one) through. */
        public void release() {
            release.countDown();
        }

        private void pass(long position, int length) throws IOException {
            if (!test.matches(position, length) || !taken.compareAndSet(false, true)) {
                return;
            }
            reached.countDown();
            try {
                if (!release.await(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                    throw new IOException("the test never released the write parked at " + position);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while parked at " + position);
            }
        }
    }

    private final Storage delegate;
    private volatile Gate gate;

    public GatedStorage(Storage delegate) {
        this.delegate = delegate;
    }

    /** Arms a gate for the next write that {@code test} matches (replacing any gate armed before). */
    public Gate gateWrite(WriteTest test) {
        Gate g = new Gate(test);
        gate = g;
        return g;
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        return delegate.read(dst, position);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        Gate g = gate;
        if (g != null) {
            g.pass(position, src.remaining());
        }
        delegate.write(src, position);
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
    public void close() throws IOException {
        delegate.close();
    }

    @Override
    public void event(StorageEvent event) {
        delegate.event(event);
    }

    /**
     * Waits until {@code thread} has ended or is parked (WAITING: on a lock, as far as the caller's scenario
     * allows nothing else), for a race whose second request must either complete or be held back by a lock.
     */
    public static void awaitDoneOrParked(Thread thread) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Gate.TIMEOUT_SECONDS);
        while (thread.isAlive() && thread.getState() != Thread.State.WAITING) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(thread + " neither ended nor parked: " + thread.getState());
            }
            Thread.sleep(1);
        }
    }
}
