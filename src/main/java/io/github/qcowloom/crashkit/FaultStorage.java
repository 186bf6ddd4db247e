package io.github.qcowloom.crashkit;

import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A storage that fails I/O with an {@link InjectedFault} (EIO, ENOSPC) once a rule triggers, as QEMU's blkdebug
 * does: after a named {@link StorageEvent} the driver announces, or at the Nth operation of a kind. A rule fails
 * either the one next operation ({@code once}) or every operation from then on. {@link #size()},
 * {@link #alignment()}, {@link #readOnly()} and {@link #close()} never fail, nor does {@link #discard}: the driver
 * ignores a failed discard (the bytes no longer matter), so a rule waits for an operation whose failure it reports.
 */
public final class FaultStorage extends ForwardingStorage {
    /** One inject-error rule; its state is guarded by the storage's lock. */
    private static final class Rule {
        final StorageEvent event;
        final IoKind kind;
        final long nth;
        final Errno errno;
        final boolean once;
        final String trigger;
        boolean armed;
        boolean spent;

        Rule(StorageEvent event, IoKind kind, long nth, Errno errno, boolean once, String trigger) {
            this.event = event;
            this.kind = kind;
            this.nth = nth;
            this.errno = errno;
            this.once = once;
            this.trigger = trigger;
        }
    }

    private final ReentrantLock lock = new ReentrantLock();
    // Guarded by lock.
    private final List<Rule> rules = new ArrayList<>();
    private final Map<IoKind, Long> counts = new EnumMap<>(IoKind.class);
    private long injected;

    /** Passes every operation to {@code inner} until a rule triggers. */
    public FaultStorage(Storage inner) {
        super(inner);
    }

    /** After {@code event} fires, fails the next operation ({@code once}) or every later one. */
    public FaultStorage failAfterEvent(StorageEvent event, Errno errno, boolean once) {
        return add(new Rule(event, null, 0, errno, once, "after event " + event.blkdebugName()));
    }

    /**
     * Fails the {@code n}th (1-based, counted from this storage's creation) operation of {@code kind}, and with
     * {@code once} false every operation after it too.
     */
    public FaultStorage failAt(IoKind kind, long n, Errno errno, boolean once) {
        if (n < 1) {
            throw new IllegalArgumentException("n is 1-based: " + n);
        }
        return add(new Rule(null, kind, n, errno, once, "operation " + n + " of kind " + kind));
    }

    /** Removes every rule; later operations pass. */
    public void clearRules() {
        lock.lock();
        try {
            rules.clear();
        } finally {
            lock.unlock();
        }
    }

    /** How many operations have failed so far. */
    public long faultsInjected() {
        lock.lock();
        try {
            return injected;
        } finally {
            lock.unlock();
        }
    }

    /** Arms the rules waiting for {@code event}. */
    @Override
    public void event(StorageEvent event) {
        lock.lock();
        try {
            for (Rule r : rules) {
                if (r.event == event && !r.spent) {
                    r.armed = true;
                }
            }
        } finally {
            lock.unlock();
        }
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        before(IoKind.READ);
        return super.read(dst, position);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        before(IoKind.WRITE);
        super.write(src, position);
    }

    @Override
    public void flush() throws IOException {
        before(IoKind.FLUSH);
        super.flush();
    }

    @Override
    public void flushRange(long position, long length) throws IOException {
        before(IoKind.FLUSH);
        super.flushRange(position, length);
    }

    @Override
    public void punchHole(long position, long length) throws IOException {
        before(IoKind.WRITE);
        super.punchHole(position, length);
    }

    @Override
    public void writeZeroes(long position, long length) throws IOException {
        before(IoKind.WRITE);
        super.writeZeroes(position, length);
    }

    @Override
    public void reserve(long position, long length) throws IOException {
        before(IoKind.WRITE); // it grows the file and takes space, as a write
        super.reserve(position, length);
    }

    @Override
    public void extendTo(long end) throws IOException {
        before(IoKind.WRITE);
        super.extendTo(end);
    }

    @Override
    public void setLength(long length) throws IOException {
        before(IoKind.WRITE);
        super.setLength(length);
    }

    private FaultStorage add(Rule rule) {
        lock.lock();
        try {
            rules.add(rule);
        } finally {
            lock.unlock();
        }
        return this;
    }

    /** Counts the operation and throws if a rule fails it. */
    private void before(IoKind kind) throws InjectedFault {
        lock.lock();
        try {
            long count = counts.merge(kind, 1L, Long::sum);
            for (Rule r : rules) {
                if (r.kind == kind && r.nth == count && !r.spent) {
                    r.armed = true;
                }
                if (r.armed && !r.spent) {
                    r.spent = r.once;
                    injected++;
                    throw new InjectedFault(r.errno, r.trigger);
                }
            }
        } finally {
            lock.unlock();
        }
    }
}
