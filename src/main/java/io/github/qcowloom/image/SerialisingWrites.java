package io.github.qcowloom.image;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The guest writes in flight on an image whose requests must be whole sectors (an encrypted one), so that a write
 * that does not cover its first or last sector whole can read, merge and write that sector without losing a
 * concurrent write's bytes: QEMU's serialising requests (block/io.c, for a request_alignment above the request's).
 * A write that reads and merges ({@code serialising}) waits until no write in flight overlaps its sectors; any
 * other write waits only for serialising ones that overlap it. So a merge never runs beside a write into the same
 * sector, and whole-sector writes still run side by side.
 *
 * <p>Lock discipline: {@code lock} guards {@code inFlight}; it is held only to look and to add or remove, never
 * across I/O. A request enters before it takes any other lock of the image (the image lock, a cluster lock), so
 * the wait here never holds one.
 */
final class SerialisingWrites {
    /** A write in flight over sectors {@code [first, end)}. */
    record Entry(long first, long end, boolean serialising) {
        boolean conflicts(long otherFirst, long otherEnd, boolean otherSerialising) {
            return (serialising || otherSerialising) && first < otherEnd && otherFirst < end;
        }
    }

    private final int sectorSize;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition left = lock.newCondition();
    private final List<Entry> inFlight = new ArrayList<>();

    SerialisingWrites(int sectorSize) {
        this.sectorSize = sectorSize;
    }

    /** True if {@code [offset, offset + length)} starts or ends inside a sector. */
    private boolean partial(long offset, long length) {
        return offset % sectorSize != 0 || (offset + length) % sectorSize != 0;
    }

    /**
     * Waits until the write of {@code [offset, offset + length)} may run, and records it; pair with {@link #leave}.
     * A partial write ({@link #partial}) is serialising.
     */
    Entry enter(long offset, long length) {
        long first = offset / sectorSize;
        long end = Math.max(first + 1, Math.ceilDiv(offset + length, sectorSize));
        boolean serialising = partial(offset, length);
        lock.lock();
        try {
            while (conflict(first, end, serialising)) {
                left.awaitUninterruptibly();
            }
            Entry entry = new Entry(first, end, serialising);
            inFlight.add(entry);
            return entry;
        } finally {
            lock.unlock();
        }
    }

    /** Ends what {@link #enter} recorded, waking the writes that waited for it. */
    void leave(Entry entry) {
        lock.lock();
        try {
            inFlight.remove(entry);
            left.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private boolean conflict(long first, long end, boolean serialising) {
        for (Entry e : inFlight) {
            if (e.conflicts(first, end, serialising)) {
                return true;
            }
        }
        return false;
    }
}
