package io.github.qcowloom.alloc;

import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;

/**
 * The refcounts of host clusters: the reftable in memory, refcount blocks through a {@link TableCache}. Every
 * method is called with the image's metadata lock held (QEMU's s->lock); none of them syncs except where a new
 * refcount block or a larger reftable must reach the disk before the entry that points to it.
 */
public final class RefcountTable {
    public RefcountTable(Storage file, Header header, TableCache refblockCache) throws IOException {
        throw new UnsupportedOperationException("to be written");
    }

    /** Refcount of host cluster {@code cluster} (0 beyond what the reftable covers). */
    public long get(long cluster) throws IOException {
        throw new UnsupportedOperationException();
    }

    /**
     * Adds {@code delta} to the refcount of {@code cluster} in the cache (the refblock slice becomes dirty).
     *
     * @throws io.github.qcowloom.api.CorruptImageException on underflow below 0 or overflow past the width
     */
    public void update(long cluster, long delta) throws IOException {
        throw new UnsupportedOperationException();
    }

    /**
     * Allocates {@code n} contiguous clusters whose refcount is 0, sets each to 1 (in the cache, dirty) and
     * returns the host byte offset of the first.
     */
    public long allocate(int n) throws IOException {
        throw new UnsupportedOperationException();
    }

    /** Host offset of the reftable and its size in clusters (they change when it grows). */
    public long tableOffset() {
        throw new UnsupportedOperationException();
    }

    public int tableClusters() {
        throw new UnsupportedOperationException();
    }
}
