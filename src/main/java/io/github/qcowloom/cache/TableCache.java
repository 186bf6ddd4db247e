package io.github.qcowloom.cache;

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
 */
public final class TableCache {
    private final Storage storage;
    /** Announced before each load (L2_LOAD for the L2 cache), or null. */
    private final StorageEvent loadEvent;
    private final int sliceSize;
    private final int capacity;
    private final ReentrantLock lock = new ReentrantLock();
    private final LinkedHashMap<Long, CompletableFuture<Slice>> slices = new LinkedHashMap<>(16, 0.75f, true);

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

    public int sliceSize() {
        return sliceSize;
    }

    /** The slice that starts at {@code offset} (a multiple of the slice size), read from storage on a miss. */
    public Slice get(long offset) throws IOException {
        if ((offset & (sliceSize - 1)) != 0) {
            throw new IllegalArgumentException("unaligned slice offset " + offset);
        }
        CompletableFuture<Slice> future;
        boolean load = false;
        lock.lock();
        try {
            future = slices.get(offset);
            if (future == null) {
                future = new CompletableFuture<>();
                slices.put(offset, future);
                load = true;
                evictOverCapacity();
            }
        } finally {
            lock.unlock();
        }
        Slice slice = load ? load(offset, future) : await(future);
        storage.event(StorageEvent.CACHE_LOOKUP);
        return slice;
    }

    private Slice load(long offset, CompletableFuture<Slice> future) throws IOException {
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
                slices.remove(offset, future);
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

    /** Drops the least recently used clean slices beyond capacity; slices loading or dirty stay. */
    private void evictOverCapacity() {
        Iterator<Map.Entry<Long, CompletableFuture<Slice>>> it = slices.entrySet().iterator();
        while (slices.size() > capacity && it.hasNext()) {
            CompletableFuture<Slice> f = it.next().getValue();
            if (f.isDone() && !f.isCompletedExceptionally() && !f.join().dirty()) {
                it.remove();
            }
        }
    }

    /**
     * Puts a zeroed, dirty slice at {@code offset} without reading the disk: for a table that was just allocated.
     * The caller holds the metadata lock.
     */
    public Slice create(long offset) {
        Slice slice = new Slice(offset, new byte[sliceSize]);
        slice.markDirty();
        lock.lock();
        try {
            slices.put(offset, CompletableFuture.completedFuture(slice));
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
            for (CompletableFuture<Slice> f : slices.values()) {
                if (f.isDone() && !f.isCompletedExceptionally() && f.join().dirty()) {
                    dirty.add(f.join());
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

    /** Writes the copies (no sync) and marks each slice clean unless it changed after it was copied. */
    public void writeBack(List<DirtyCopy> copies) throws IOException {
        for (DirtyCopy c : copies) {
            storage.write(ByteBuffer.wrap(c.bytes()), c.slice().offset());
        }
        for (DirtyCopy c : copies) {
            c.slice().markWritten(c.version());
        }
    }

    /** Writes one slice now (no sync) and marks it clean; the caller holds the metadata lock. */
    public void writeNow(Slice slice) throws IOException {
        long v = slice.version();
        storage.write(ByteBuffer.wrap(slice.data().clone()), slice.offset());
        slice.markWritten(v);
    }

    /** True if any slice waits for a write-back. */
    public boolean hasDirty() {
        lock.lock();
        try {
            for (CompletableFuture<Slice> f : slices.values()) {
                if (f.isDone() && !f.isCompletedExceptionally() && f.join().dirty()) {
                    return true;
                }
            }
            return false;
        } finally {
            lock.unlock();
        }
    }

    /** Forgets every slice; the next lookups read from storage. */
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
