package io.github.qcowloom.soak;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStream;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The soak child's journal on its stdout, which the parent sends to a file that keeps what was written when the
 * child is killed:
 * lines are taken in the order {@link #line} is called (the order the parent's model relies on) and written by one
 * platform thread. {@link #durable} returns only once its line is in the pipe: for operations whose effect the
 * parent could not tell from the disk alone (zeroes), the line must be there before the operation starts.
 *
 * <p>Locks: {@code lock} guards {@code written} (the count of lines in the pipe); the queue is its own.
 */
final class SoakLog {
    private record Entry(long seq, String text) {
    }

    private final LinkedBlockingQueue<Entry> queue = new LinkedBlockingQueue<>();
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition advanced = lock.newCondition();
    private long nextSeq;
    private long written;

    SoakLog(OutputStream out) {
        BufferedWriter w = new BufferedWriter(new OutputStreamWriter(out, StandardCharsets.US_ASCII), 1 << 16);
        Thread drain = new Thread(() -> drain(w), "soak-log");
        drain.setDaemon(true);
        drain.start();
    }

    /** Queues a line; its place among all lines is fixed when this returns. */
    long line(String text) {
        lock.lock();
        try {
            long seq = ++nextSeq;
            queue.add(new Entry(seq, text));
            return seq;
        } finally {
            lock.unlock();
        }
    }

    /** Queues a line and waits until it is in the pipe. */
    void durable(String text) throws InterruptedException {
        long seq = line(text);
        lock.lock();
        try {
            while (written < seq) {
                advanced.await();
            }
        } finally {
            lock.unlock();
        }
    }

    private void drain(BufferedWriter w) {
        try {
            while (true) {
                Entry e = queue.take();
                w.write(e.text());
                w.write('\n');
                if (queue.isEmpty()) {
                    w.flush();
                    lock.lock();
                    try {
                        written = e.seq();
                        advanced.signalAll();
                    } finally {
                        lock.unlock();
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
