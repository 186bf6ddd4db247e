package io.github.qcowloom.cli;

import java.io.IOException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Lets the writers of consecutive chunks take turns in guest order, as qemu-img convert's in-order writes do:
 * a chunk is written only after every chunk before it. Workers take chunks in ascending order, so the holder of the
 * lowest unwritten chunk never waits and every turn comes. A writer that fails stops everyone waiting.
 */
final class WriteTurns {
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition passed = lock.newCondition();
    /** Where the next chunk to be written starts. */
    private long next;
    private Throwable failure;

    /** Waits until every chunk before {@code offset} has been written; rethrows a failure of another writer. */
    void await(long offset) throws IOException {
        lock.lock();
        try {
            while (next != offset && failure == null) {
                passed.await();
            }
            if (failure instanceof IOException io) {
                throw io;
            }
            if (failure != null) {
                throw new IOException(failure);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting to write in order", e);
        } finally {
            lock.unlock();
        }
    }

    /** The chunk that held the turn is written: the turn passes to the chunk at {@code nextOffset}. */
    void pass(long nextOffset) {
        lock.lock();
        try {
            next = nextOffset;
            passed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** A writer failed with {@code cause}: every waiting and later writer rethrows it. */
    void abort(Throwable cause) {
        lock.lock();
        try {
            if (failure == null) {
                failure = cause;
            }
            passed.signalAll();
        } finally {
            lock.unlock();
        }
    }
}
