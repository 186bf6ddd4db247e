package io.github.qcowloom.simulation;

import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A storage under the {@link SimScheduler}: every read, write, flush and size change is a point where the scheduler
 * may switch threads, before the operation takes effect and after it, as a real disk's latency lets other requests
 * run; so is every {@link StorageEvent} the driver announces. With {@code delayPercent} above 0 an operation also waits a random virtual time (up to
 * {@code maxDelayNanos}), as a slow disk would, so that operations issued in one order may complete in another.
 * Everything else is forwarded to the wrapped storage. No locks of its own.
 */
public final class SimStorage implements Storage {
    private final Storage inner;
    private final SimScheduler scheduler;
    private final int delayPercent;
    private final long maxDelayNanos;

    /** Yields around every operation of {@code inner}, with no delays. */
    public SimStorage(Storage inner, SimScheduler scheduler) {
        this(inner, scheduler, 0, 0);
    }

    /** Yields around every operation, and delays {@code delayPercent} % of them by up to {@code maxDelayNanos}. */
    public SimStorage(Storage inner, SimScheduler scheduler, int delayPercent, long maxDelayNanos) {
        this.inner = inner;
        this.scheduler = scheduler;
        this.delayPercent = delayPercent;
        this.maxDelayNanos = maxDelayNanos;
    }

    private void before() {
        scheduler.yieldPoint();
        if (delayPercent > 0 && Thread.currentThread().isVirtual() && scheduler.nextInt(100) < delayPercent) {
            scheduler.sleep(1 + scheduler.nextInt((int) Math.min(Integer.MAX_VALUE - 1, maxDelayNanos)));
        }
    }

    private void after() {
        scheduler.yieldPoint();
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        before();
        try {
            return inner.read(dst, position);
        } finally {
            after();
        }
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        before();
        try {
            inner.write(src, position);
        } finally {
            after();
        }
    }

    @Override
    public void flush() throws IOException {
        before();
        try {
            inner.flush();
        } finally {
            after();
        }
    }

    @Override
    public void punchHole(long position, long length) throws IOException {
        before();
        try {
            inner.punchHole(position, length);
        } finally {
            after();
        }
    }

    @Override
    public void writeZeroes(long position, long length) throws IOException {
        before();
        try {
            inner.writeZeroes(position, length);
        } finally {
            after();
        }
    }

    @Override
    public long size() throws IOException {
        return inner.size();
    }

    @Override
    public void setLength(long length) throws IOException {
        before();
        try {
            inner.setLength(length);
        } finally {
            after();
        }
    }

    @Override
    public void extendTo(long end) throws IOException {
        before();
        try {
            inner.extendTo(end);
        } finally {
            after();
        }
    }

    @Override
    public int alignment() {
        return inner.alignment();
    }

    @Override
    public boolean readOnly() {
        return inner.readOnly();
    }

    /**
     * The driver's announced events are switch points too, delayed like I/O (some, such as a cache lookup, have no
     * I/O, but a thread can be descheduled anywhere: a delay there lets others run through whole operations).
     */
    @Override
    public void event(StorageEvent event) {
        before();
        inner.event(event);
    }

    @Override
    public void close() throws IOException {
        inner.close();
    }
}
