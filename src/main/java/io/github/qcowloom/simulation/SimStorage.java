package io.github.qcowloom.simulation;

import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A storage under the {@link SimScheduler}: every read, write, flush and size change is a point where the scheduler
 * may switch threads, before the operation takes effect and after it, as a real disk's latency lets other requests
 * run; so is every {@link StorageEvent} the driver announces. With {@code delayPercent} above 0 an operation (or
 * event) also waits a random virtual time (up to {@code maxDelayNanos}), as a slow disk or a descheduled thread
 * would, so that operations issued in one order may complete in another. Everything else is forwarded to the
 * wrapped storage. No locks of its own.
 */
public final class SimStorage extends ForwardingStorage {
    private final SimScheduler scheduler;
    private final int delayPercent;
    private final long maxDelayNanos;

    /** One forwarded operation. */
    @FunctionalInterface
    private interface Io<T> {
        T run() throws IOException;
    }

    /** It stands for a device: every operation yields, as one waiting for a disk would. */
    @Override
    public boolean waitsForDevice() {
        return true;
    }

    /** Yields around every operation of {@code inner}, with no delays. */
    public SimStorage(Storage inner, SimScheduler scheduler) {
        this(inner, scheduler, 0, 0);
    }

    /** Yields around every operation, and delays {@code delayPercent} % of them by up to {@code maxDelayNanos}. */
    public SimStorage(Storage inner, SimScheduler scheduler, int delayPercent, long maxDelayNanos) {
        super(inner);
        this.scheduler = scheduler;
        this.delayPercent = delayPercent;
        this.maxDelayNanos = maxDelayNanos;
    }

    private void before() {
        scheduler.yieldPoint();
        if (delayPercent > 0 && scheduler.inSimulation() && scheduler.nextInt(100) < delayPercent) {
            scheduler.sleep(1 + scheduler.nextInt((int) Math.min(Integer.MAX_VALUE - 1, maxDelayNanos)));
        }
    }

    private <T> T around(Io<T> io) throws IOException {
        before();
        try {
            return io.run();
        } finally {
            scheduler.yieldPoint();
        }
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        return around(() -> super.read(dst, position));
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        around(() -> {
            super.write(src, position);
            return null;
        });
    }

    @Override
    public void flush() throws IOException {
        around(() -> {
            super.flush();
            return null;
        });
    }

    @Override
    public void flushRange(long position, long length) throws IOException {
        around(() -> {
            super.flushRange(position, length);
            return null;
        });
    }

    @Override
    public void punchHole(long position, long length) throws IOException {
        around(() -> {
            super.punchHole(position, length);
            return null;
        });
    }

    @Override
    public boolean discard(long position, long length) throws IOException {
        return around(() -> super.discard(position, length));
    }

    @Override
    public void writeZeroes(long position, long length) throws IOException {
        around(() -> {
            super.writeZeroes(position, length);
            return null;
        });
    }

    @Override
    public void reserve(long position, long length) throws IOException {
        around(() -> {
            super.reserve(position, length);
            return null;
        });
    }

    @Override
    public void setLength(long length) throws IOException {
        around(() -> {
            super.setLength(length);
            return null;
        });
    }

    @Override
    public void extendTo(long end) throws IOException {
        around(() -> {
            super.extendTo(end);
            return null;
        });
    }

    /**
     * The driver's announced events are switch points too, delayed like I/O (some, such as a cache lookup, have no
     * I/O, but a thread can be descheduled anywhere: a delay there lets others run through whole operations).
     */
    @Override
    public void event(StorageEvent event) {
        before();
        super.event(event);
    }
}
