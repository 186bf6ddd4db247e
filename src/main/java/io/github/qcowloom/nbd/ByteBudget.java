package io.github.qcowloom.nbd;

import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The bytes one connection's requests may hold at once: a READ's reply buffer or a WRITE's payload is charged
 * before it is allocated and given back once its reply has been sent. A client that stops reading replies thus
 * pins at most this much (plus one request larger than the budget, which waits until it is alone), however many
 * requests it pipelines; its reading thread waits here, and the socket pushes back on the client.
 *
 * <p>Lock discipline: {@code lock} guards {@code inFlight}; {@code freed} is signalled, under it, whenever bytes
 * come back. No other lock is taken while holding it.
 */
final class ByteBudget {
    private final long limit;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition freed = lock.newCondition();
    private long inFlight;

    ByteBudget(long limit) {
        if (limit < 1) {
            throw new IllegalArgumentException("budget " + limit);
        }
        this.limit = limit;
    }

    /**
     * Takes {@code bytes}, waiting until they fit: within the limit, or, for a request larger than the limit,
     * until nothing else is in flight.
     */
    void acquire(long bytes) {
        if (bytes == 0) {
            return;
        }
        lock.lock();
        try {
            while (inFlight > 0 && inFlight + bytes > limit) {
                freed.awaitUninterruptibly();
            }
            inFlight += bytes;
        } finally {
            lock.unlock();
        }
    }

    void release(long bytes) {
        if (bytes == 0) {
            return;
        }
        lock.lock();
        try {
            inFlight -= bytes;
            freed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Bytes taken and not yet given back. */
    long inFlight() {
        lock.lock();
        try {
            return inFlight;
        } finally {
            lock.unlock();
        }
    }
}
