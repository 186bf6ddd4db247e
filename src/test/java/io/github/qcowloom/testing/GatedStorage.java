package io.github.qcowloom.testing;

import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;

/**
 * A {@link Storage} that forwards every call and can park the thread of one chosen read or write, or of one chosen
 * event the driver announces, before it goes on, until the test releases it: races between requests are forced in
 * tests this way, never with switches in production code. One gate is armed at a time; it catches the first match.
 */
public final class GatedStorage extends ForwardingStorage {
    private static final long TIMEOUT_SECONDS = 30;

    /** Chooses the read or write to park, by where it goes and how long it is. */
    @FunctionalInterface
    public interface RangeTest {
        boolean matches(long position, int length);
    }

    /** One armed gate: the test waits for a thread to arrive, then lets it through. */
    public static final class Gate {
        private final CountDownLatch reached = new CountDownLatch(1);
        private final CountDownLatch release = new CountDownLatch(1);
        private volatile Thread parked;

        private Gate() {
        }

        /** Waits until a thread is parked at the gate; false if none came in time. */
        public boolean awaitParked() throws InterruptedException {
            return reached.await(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        }

        /** The thread parked here (null before one arrives). */
        public Thread parked() {
            return parked;
        }

        /** Lets the parked thread through (the gate is disarmed once a thread parks: later ones pass). */
        public void release() {
            release.countDown();
        }

        private void park(String where) throws IOException {
            parked = Thread.currentThread();
            reached.countDown();
            try {
                if (!release.await(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                    throw new IOException("the test never released the thread parked at " + where);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while parked at " + where);
            }
        }
    }

    private record Armed(Gate gate, RangeTest read, RangeTest write, StorageEvent event, Predicate<Thread> thread) {
    }

    private final AtomicReference<Armed> armed = new AtomicReference<>();

    public GatedStorage(Storage delegate) {
        super(delegate);
    }

    /** Arms a gate for the next write that {@code test} matches (replacing any gate armed before). */
    public Gate gateWrite(RangeTest test) {
        Gate g = new Gate();
        armed.set(new Armed(g, null, test, null, t -> true));
        return g;
    }

    /** Arms a gate for the next read that {@code test} matches (replacing any gate armed before). */
    public Gate gateRead(RangeTest test) {
        Gate g = new Gate();
        armed.set(new Armed(g, test, null, null, t -> true));
        return g;
    }

    /**
     * Arms a gate for the next announcement of {@code event} by a thread {@code thread} accepts, parked after the
     * announcement reached the storage below (replacing any gate armed before).
     */
    public Gate gateEvent(StorageEvent event, Predicate<Thread> thread) {
        Gate g = new Gate();
        armed.set(new Armed(g, null, null, event, thread));
        return g;
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        Armed a = armed.get();
        if (a != null && a.read() != null && a.read().matches(position, dst.remaining())
                && armed.compareAndSet(a, null)) {
            a.gate().park("the read at " + position);
        }
        return super.read(dst, position);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        Armed a = armed.get();
        if (a != null && a.write() != null && a.write().matches(position, src.remaining())
                && armed.compareAndSet(a, null)) {
            a.gate().park("the write at " + position);
        }
        super.write(src, position);
    }

    @Override
    public void event(StorageEvent event) {
        super.event(event);
        Armed a = armed.get();
        if (a != null && a.event() == event && a.thread().test(Thread.currentThread())
                && armed.compareAndSet(a, null)) {
            try {
                a.gate().park("event " + event.blkdebugName());
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
    }

    /**
     * Waits until {@code thread} has ended or is parked (WAITING: on a lock, as far as the caller's scenario
     * allows nothing else), for a race whose second request must either complete or be held back by a lock.
     */
    public static void awaitDoneOrParked(Thread thread) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_SECONDS);
        while (thread.isAlive() && thread.getState() != Thread.State.WAITING) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(thread + " neither ended nor parked: " + thread.getState());
            }
            Thread.sleep(1);
        }
    }
}
