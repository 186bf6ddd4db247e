package io.github.qcowloom.cli;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Runs the writes of consecutive pieces in guest order, as qemu-img convert's in-order writes are made, without a
 * hand-off between one write and the next: a worker whose piece is ready queues its write, and whoever finds the
 * next turn's write queued while nobody is writing runs it, and every queued write after it, on its own thread.
 * That worker so returns only once the queue is empty, which takes as long as the others keep it filled.
 *
 * <p>Why: waking the next piece's worker once a write was done, and letting it write, left about 300 µs between
 * 2 MiB writes (whose own time was about 450 µs). The reads that are ahead held both cores, and the woken writer,
 * the one thread on the critical path, waited for one of them. A 2 GiB qcow2 to raw convert spent a third of its
 * copy in those gaps.
 *
 * <p>Workers take pieces in ascending turns, so the lowest unwritten turn always has a worker that will queue it,
 * and every turn comes. A write that fails, or a worker's {@link #abort}, stops every write not yet started: their
 * callers rethrow the failure. No caller returns or throws while its write runs, so its buffer is free either way.
 *
 * <p>Lock discipline: {@code lock} guards every field, and each queued write's {@code done}; it is never held
 * while a write runs.
 */
final class WriteTurns {
    /** A queued write, and the condition its caller waits on until the write has run or was dropped. */
    private static final class Queued {
        final ChunkCopy.Write write;
        final Condition settled;
        /** The write has run, or was dropped: it will not run (again), and its caller may go. */
        boolean done;

        Queued(ChunkCopy.Write write, Condition settled) {
            this.write = write;
            this.settled = settled;
        }
    }

    private final ReentrantLock lock = new ReentrantLock();
    private final Map<Long, Queued> queued = new HashMap<>();
    /** The turn to be written next: every turn before it has been written. */
    private long next;
    /** A thread is running queued writes. */
    private boolean writing;
    private Throwable failure;

    /**
     * Has {@code write} run in turn {@code turn}, here or on the thread that is running the writes before it, and
     * returns once it has run. Rethrows the failure of any write (this one's or another's) or abort. An interrupt
     * does not end the wait (the write may be running on the caller's buffer); it is kept for the caller.
     */
    void write(long turn, ChunkCopy.Write write) throws IOException {
        lock.lock();
        try {
            rethrowFailure();
            Queued mine = new Queued(write, lock.newCondition());
            queued.put(turn, mine);
            if (!writing) {
                writing = true;
                try {
                    runQueued();
                } finally {
                    writing = false;
                }
            }
            while (!mine.done) {
                mine.settled.awaitUninterruptibly(); // keeps the interrupt status
            }
            rethrowFailure();
        } finally {
            lock.unlock();
        }
    }

    /** Runs the queued writes from turn {@code next} on, while there are any; called and returns with the lock held. */
    private void runQueued() {
        for (Queued q; failure == null && (q = queued.remove(next)) != null; ) {
            Throwable thrown = null;
            lock.unlock();
            try {
                q.write.run();
            } catch (Throwable e) {
                thrown = e;
            } finally {
                lock.lock();
            }
            settle(q);
            if (thrown != null) {
                fail(thrown);
                return;
            }
            next++;
        }
    }

    /** A worker failed with {@code cause} (in its read, say): every waiting and later caller rethrows it. */
    void abort(Throwable cause) {
        lock.lock();
        try {
            fail(cause);
        } finally {
            lock.unlock();
        }
    }

    /** Records the first failure and drops every queued write: none of them will run. */
    private void fail(Throwable cause) {
        if (failure == null) {
            failure = cause;
        }
        for (Queued q : queued.values()) {
            settle(q);
        }
        queued.clear();
    }

    private static void settle(Queued q) {
        q.done = true;
        q.settled.signal();
    }

    private void rethrowFailure() throws IOException {
        if (failure instanceof IOException io) {
            throw io;
        }
        if (failure instanceof RuntimeException re) {
            throw re;
        }
        if (failure instanceof Error e) {
            throw e;
        }
        if (failure != null) {
            throw new IOException(failure);
        }
    }
}
