package io.github.qcowloom.cache;

import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.locks.ReentrantLock;

/**
 * An LRU cache of fixed-size slices of on-disk tables. Many threads may look up at once: the map is guarded by a
 * {@link ReentrantLock} held only for map operations, never during I/O, and the first thread to miss a slice
 * loads it while later ones wait on its future (a virtual thread parks there, it does not pin a carrier).
 */
public final class TableCache {
    private final Storage storage;
    private final int sliceSize;
    private final int capacity;
    private final ReentrantLock lock = new ReentrantLock();
    private final LinkedHashMap<Long, CompletableFuture<Slice>> slices = new LinkedHashMap<>(16, 0.75f, true);

    /**
     * @param sliceSize bytes per slice, a power of two no larger than the cluster size
     * @param capacity the most slices kept (at least 1)
     */
    public TableCache(Storage storage, int sliceSize, int capacity) {
        if (Integer.bitCount(sliceSize) != 1 || capacity < 1) {
            throw new IllegalArgumentException("slice size " + sliceSize + ", capacity " + capacity);
        }
        this.storage = storage;
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
        if (load) {
            return load(offset, future);
        }
        return await(future);
    }

    private Slice load(long offset, CompletableFuture<Slice> future) throws IOException {
        try {
            byte[] data = new byte[sliceSize];
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

    /** Drops the least recently used loaded slices beyond capacity; slices still loading stay. */
    private void evictOverCapacity() {
        Iterator<Map.Entry<Long, CompletableFuture<Slice>>> it = slices.entrySet().iterator();
        while (slices.size() > capacity && it.hasNext()) {
            if (it.next().getValue().isDone()) {
                it.remove();
            }
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
