package io.github.qcowloom.cache;

import io.github.qcowloom.storage.RangesToFlush;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.locks.ReentrantLock;

/**
 * An LRU cache of fixed-size slices of on-disk tables. Many threads may look up at once: the map is guarded by a
 * {@link ReentrantLock} held only for map operations, never during I/O, and the first thread to miss a slice
 * loads it while later ones wait on its future (a virtual thread parks there, it does not pin a carrier).
 * Dirty slices are never evicted: they leave the cache only after a write-back, which the image orders
 * (refcount blocks, sync, L2 slices, sync), so an eviction can never write a table out of order.
 *
 * <p>A thread that will change a slice takes it with {@link #pin} and gives it back with {@link #unpin} once the
 * change is made (and marked dirty). Readers, who only {@link #get}, evict slices when they miss, under this
 * cache's lock alone, not under the metadata lock a writer holds: without the pin, a reader could evict a clean
 * slice between a writer's lookup and its change, which would then land in a slice no longer cached (lost, while a
 * second copy of the slice was read from the disk). A pinned slice is never evicted, so there is only ever one
 * object per cached offset while it is being changed; after {@link #unpin} it is dirty and stays until written back.
 *
 * <p>Lock discipline: this cache's lock guards the map, the LRU order and the pin counts; it is held for map
 * operations only (never during I/O, never while waiting for a load) and no other lock is taken under it.
 */
public final class TableCache {
    private final Storage storage;
    /** Announced before each load (L2_LOAD for the L2 cache), or null. */
    private final StorageEvent loadEvent;
    private final int sliceSize;
    private final int capacity;
    private final ReentrantLock lock = new ReentrantLock();
    /**
     * The slices by index (offset / slice size), in access order. Keyed by offset, multiples of 4 KiB have their low
     * 12 bits zero, and HashMap's spread (the high 16 bits folded into the low ones) left 16 consecutive slices in
     * one bucket of a table of up to 4096, whose bins grew into trees walked at every lookup.
     */
    private final LinkedHashMap<Long, Entry> slices = new LinkedHashMap<>(16, 0.75f, true);
    /** Asked before each slice is written (the image's overlap check), under no lock of this cache; none until set. */
    private volatile WriteGuard guard = (offset, length) -> { };

    /** Refuses a slice's write to where it would destroy something else, by throwing. */
    @FunctionalInterface
    public interface WriteGuard {
        void check(long offset, int length) throws IOException;
    }

    /** A cached slice (or its load in progress) and how many writers hold it; guarded by {@link #lock}. */
    private static final class Entry {
        final CompletableFuture<Slice> future;
        int pins;

        Entry(CompletableFuture<Slice> future) {
            this.future = future;
        }

        /** The slice if it has loaded, else null (still loading, or failed). */
        Slice loaded() {
            return future.isDone() && !future.isCompletedExceptionally() ? future.join() : null;
        }
    }

    /**
     * @param sliceSize bytes per slice, a power of two no larger than the cluster size
     * @param capacity the most slices kept (at least 1)
     */
    public TableCache(Storage storage, int sliceSize, int capacity) {
        this(storage, sliceSize, capacity, null);
    }

    /** A cache that announces {@code loadEvent} to its storage before every read of a slice. */
    public TableCache(Storage storage, int sliceSize, int capacity, StorageEvent loadEvent) {
        if (Integer.bitCount(sliceSize) != 1 || capacity < 1) {
            throw new IllegalArgumentException("slice size " + sliceSize + ", capacity " + capacity);
        }
        this.storage = storage;
        this.loadEvent = loadEvent;
        this.sliceSize = sliceSize;
        this.capacity = capacity;
    }

    /** The slices the cache keeps at most beyond those it cannot drop (loading, pinned or dirty). */
    public int capacity() {
        return capacity;
    }

    public int sliceSize() {
        return sliceSize;
    }

    /**
     * The slice that starts at {@code offset} (a multiple of the slice size), read from storage on a miss. For
     * reading: the slice may be evicted once returned (it then keeps the bytes it had); to change it, {@link #pin}.
     */
    public Slice get(long offset) throws IOException {
        return lookup(offset, false);
    }

    /**
     * The slice that starts at {@code offset}, pinned: it stays in the cache, the one object for its offset, until
     * {@link #unpin}. The caller holds the metadata lock, changes the slice, marks it dirty, then unpins it.
     */
    public Slice pin(long offset) throws IOException {
        return lookup(offset, true);
    }

    /**
     * Gives back a slice taken with {@link #pin}. A slice that was changed is dirty by now and stays until written
     * back; an unchanged one may go, and goes now if the cache is over capacity.
     */
    public void unpin(Slice slice) {
        lock.lock();
        try {
            Entry e = slices.get(key(slice.offset()));
            if (e == null || e.loaded() != slice || e.pins <= 0) {
                throw new IllegalStateException("slice at " + slice.offset() + " is not pinned");
            }
            e.pins--;
            evictOverCapacity();
        } finally {
            lock.unlock();
        }
    }

    private long key(long offset) {
        return offset / sliceSize;
    }

    private Slice lookup(long offset, boolean pin) throws IOException {
        if ((offset & (sliceSize - 1)) != 0) {
            throw new IllegalArgumentException("unaligned slice offset " + offset);
        }
        Entry entry;
        boolean load = false;
        lock.lock();
        try {
            entry = slices.get(key(offset));
            if (entry == null) {
                entry = new Entry(new CompletableFuture<>());
                slices.put(key(offset), entry);
                load = true;
                evictOverCapacity();
            }
            // Pinned under the lock that eviction holds, before the slice is handed out (even while it loads), so
            // that no eviction can come between the lookup and the pin.
            if (pin) {
                entry.pins++;
            }
        } finally {
            lock.unlock();
        }
        try {
            Slice slice = load ? load(offset, entry) : await(entry.future);
            storage.event(StorageEvent.CACHE_LOOKUP);
            return slice;
        } catch (IOException | RuntimeException | Error e) {
            // The caller gets no slice to unpin: the pin goes with the failure (a failed load already dropped the
            // entry, and its pin with it).
            if (pin) {
                lock.lock();
                try {
                    if (slices.get(key(offset)) == entry) {
                        entry.pins--;
                    }
                } finally {
                    lock.unlock();
                }
            }
            throw e;
        }
    }

    private Slice load(long offset, Entry entry) throws IOException {
        CompletableFuture<Slice> future = entry.future;
        try {
            byte[] data = new byte[sliceSize];
            if (loadEvent != null) {
                storage.event(loadEvent);
            }
            storage.readFully(ByteBuffer.wrap(data), offset);
            Slice slice = new Slice(offset, data);
            future.complete(slice);
            return slice;
        } catch (IOException | RuntimeException | Error e) {
            // Forget the failed load so that a later request retries it.
            lock.lock();
            try {
                slices.remove(key(offset), entry);
            } finally {
                lock.unlock();
            }
            future.completeExceptionally(e);
            throw e;
        }
    }

    private static Slice await(CompletableFuture<Slice> future) throws IOException {
        try {
            return future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for a metadata read");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            if (cause instanceof RuntimeException re) {
                throw re;
            }
            throw new UncheckedIOException(new IOException(cause));
        }
    }

    /**
     * Drops the least recently used clean slices beyond capacity; slices loading, pinned or dirty stay. The cache
     * thus holds at most its capacity plus the slices that cannot go: those loading, those dirty until the next
     * write-back, and the few pinned by the metadata-lock holder (one at a time, briefly), which may exceed the
     * capacity for as long as they are held.
     */
    private void evictOverCapacity() {
        Iterator<Map.Entry<Long, Entry>> it = slices.entrySet().iterator();
        while (slices.size() > capacity && it.hasNext()) {
            Entry e = it.next().getValue();
            Slice s = e.loaded();
            if (s != null && e.pins == 0 && !s.dirty()) {
                it.remove();
            }
        }
    }

    /**
     * Puts a zeroed, dirty slice at {@code offset} without reading the disk: for a table that was just allocated.
     * The caller holds the metadata lock; it may fill the slice without a pin until its first write-back, since a
     * dirty slice is never evicted.
     */
    public Slice create(long offset) {
        if ((offset & (sliceSize - 1)) != 0) {
            throw new IllegalArgumentException("unaligned slice offset " + offset);
        }
        Slice slice = new Slice(offset, new byte[sliceSize]);
        slice.markDirty();
        lock.lock();
        try {
            slices.put(key(offset), new Entry(CompletableFuture.completedFuture(slice)));
            evictOverCapacity();
        } finally {
            lock.unlock();
        }
        return slice;
    }

    /** A copy of a dirty slice's bytes at one version: what a write-back puts on disk. */
    public record DirtyCopy(Slice slice, long version, byte[] bytes) {
    }

    /**
     * Copies every dirty slice. Called under the metadata lock, so the copies are one consistent cut: every
     * change in them happened before every change not in them.
     */
    public List<DirtyCopy> copyDirty() {
        List<Slice> dirty = new ArrayList<>();
        lock.lock();
        try {
            for (Entry e : slices.values()) {
                Slice s = e.loaded();
                if (s != null && s.dirty()) {
                    dirty.add(s);
                }
            }
        } finally {
            lock.unlock();
        }
        List<DirtyCopy> copies = new ArrayList<>(dirty.size());
        for (Slice s : dirty) {
            copies.add(new DirtyCopy(s, s.version(), s.data().clone()));
        }
        return copies;
    }

    /**
     * Writes the copies (no sync); each slice is then clean unless it changed after it was copied. A copy older
     * than (or as old as) what the disk already holds of its slice is skipped, never written over it: see
     * {@link Slice#writeIfNewer}. When this returns, the disk holds every copy or a newer one of its slice.
     */
    public void writeBack(List<DirtyCopy> copies) throws IOException {
        for (DirtyCopy c : copies) {
            guard.check(c.slice().offset(), c.bytes().length);
            c.slice().writeIfNewer(storage, c.version(), c.bytes());
        }
    }

    /** Has {@code guard} asked before every write of a slice from now on. */
    public void guardWrites(WriteGuard guard) {
        this.guard = guard;
    }

    /**
     * {@link #writeBack}, returning the copies' ranges for the caller to make durable: when this returns, each range
     * holds its copy or a newer one.
     */
    public RangesToFlush writeBackRanges(List<DirtyCopy> copies) throws IOException {
        writeBack(copies);
        RangesToFlush ranges = new RangesToFlush();
        for (DirtyCopy c : copies) {
            ranges.add(c.slice().offset(), c.bytes().length);
        }
        return ranges;
    }

    /**
     * Writes one slice now (no sync), unless the disk already holds it as it is; the caller holds the metadata lock.
     * A write of an older copy of the slice in flight (a flush's) is waited for and then overwritten.
     */
    public void writeNow(Slice slice) throws IOException {
        byte[] bytes = slice.data().clone();
        guard.check(slice.offset(), bytes.length);
        slice.writeIfNewer(storage, slice.version(), bytes);
    }

    /** True if any slice waits for a write-back. */
    public boolean hasDirty() {
        lock.lock();
        try {
            for (Entry e : slices.values()) {
                Slice s = e.loaded();
                if (s != null && s.dirty()) {
                    return true;
                }
            }
            return false;
        } finally {
            lock.unlock();
        }
    }

    /** Forgets every slice; the next lookups read from storage. No slice is pinned: the image is held exclusively. */
    public void clear() {
        lock.lock();
        try {
            slices.clear();
        } finally {
            lock.unlock();
        }
    }

    /** Number of slices held now (for tests and statistics). */
    public int size() {
        lock.lock();
        try {
            return slices.size();
        } finally {
            lock.unlock();
        }
    }
}
