package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.cache.Slice;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.storage.RangesToFlush;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The tables' places: new L2 tables (QEMU's l2_allocate), the L1 table's growth and rewrites, new tables and header
 * fields, each written and synced at once in crash-safe order, and the writable, pinned L2 slice an entry change
 * goes into.
 *
 * <p>Locks: {@link #lock} is the image's metadata lock (shared with {@link MetadataWriter}, {@link ClusterSupply}
 * and {@link FlushOrder}); it guards the caches, the refcounts, the deferred frees and {@link #l1Offset}'s changes.
 * The order is a flush's: flush lock, image lock (growL1 is called with it held exclusive), metadata lock, then
 * {@link HeaderBits}' lock, innermost; a cache's lock and a slice's write lock are held around one map operation or
 * one write only (see TableCache and Slice) and take nothing. Every write and sync here happens under the metadata
 * lock (writeNewTable's callers, table edits, hold it: they run {@link FlushOrder#exclusively}), which orders it
 * against a flush's copies: a flush copies the dirty slices under it and writes them without it (see
 * {@link #writeBackRefcounts}). A slice a writer changes is pinned from its lookup to the change
 * ({@link #writableSlice}): readers evict slices under the cache's own lock, not under the metadata lock, and never
 * a pinned one.
 *
 * <p>The image's whole lock order, cluster locks included, is stated once in {@link MetadataWriter}.
 */
final class TableAllocator {
    private final ReentrantLock lock;
    private final Storage file;
    private final ClusterMapper mapper;
    private final TableCache refblockCache;
    private final RefcountTable refcounts;
    /** Where the shared table's reference goes once a copy replaced it; guarded by {@link #lock}. */
    private final DeferredFrees frees;
    private final HeaderBits headerBits;
    /** Lazy refcounts: a new L2 table's refcount stays in the cache, the dirty bit stands in for it. */
    private final boolean lazyRefcounts;
    private final OverlapCheck overlap;
    /** Where the active L1 table lives; changes when it grows. */
    private volatile long l1Offset;

    TableAllocator(Storage file, ClusterMapper mapper, TableCache refblockCache, RefcountTable refcounts,
            ReentrantLock lock, DeferredFrees frees, HeaderBits headerBits, boolean lazyRefcounts, long l1Offset) {
        this.file = file;
        this.mapper = mapper;
        this.refblockCache = refblockCache;
        this.refcounts = refcounts;
        this.lock = lock;
        this.frees = frees;
        this.headerBits = headerBits;
        this.lazyRefcounts = lazyRefcounts;
        this.l1Offset = l1Offset;
        this.overlap = new OverlapCheck(mapper, refcounts, this::l1Offset);
        // QEMU's qcow2_cache_entry_flush checks each table write-back as a data write, the table's own kind aside:
        // a table that corrupt entries place over other metadata is not written over it (and what that maps lost).
        mapper.l2Cache().guardWrites((offset, length) -> overlap.check(offset, length, "L2 table write",
                OverlapCheck.Exempt.ACTIVE_L2));
        refblockCache.guardWrites((offset, length) -> overlap.check(offset, length, "refcount block write",
                OverlapCheck.Exempt.REFCOUNT_BLOCK));
    }

    private ImageGeometry geometry() {
        return mapper.geometry();
    }

    long l1Offset() {
        return l1Offset;
    }

    /** The check that no write lands on metadata, against the tables where they are now. */
    OverlapCheck overlap() {
        return overlap;
    }

    /** Allocates guest {@code cluster}'s L2 table if it has none (in l2_allocate's order, synced). */
    void ensureL2(long cluster) throws IOException {
        lock.lock();
        try {
            mapper.l2Cache().unpin(writableSlice(cluster));
        } finally {
            lock.unlock();
        }
    }

    /**
     * The slice holding {@code cluster}'s L2 entry, in a table this image owns alone (COPIED): allocates the table
     * first when the L1 entry is empty, and copies it first when the table is shared with a snapshot. Called under
     * the lock. The slice is pinned ({@link TableCache#pin}): a reader missing the cache cannot evict it before the
     * caller's change is in it; the caller unpins it when done (after marking it dirty, if it changed it).
     */
    Slice writableSlice(long cluster) throws IOException {
        int l1Index = (int) (cluster >>> geometry().l2Bits());
        long l1Entry = mapper.l1().get(l1Index);
        long l2Offset = L1Entry.checkedL2Offset(l1Entry, l1Index, geometry().clusterSize());
        if (l2Offset == 0 || !L1Entry.copied(l1Entry)) {
            l2Offset = allocateL2(l1Index, l2Offset);
        }
        return mapper.l2Cache().pin(mapper.sliceOffset(l2Offset, cluster));
    }

    /** Unpins a slice from {@link #writableSlice}, if the lookup got that far. */
    void unpin(Slice slice) {
        if (slice != null) {
            mapper.l2Cache().unpin(slice);
        }
    }

    /**
     * QEMU's l2_allocate: a new L2 table for L1 entry {@code l1Index}, empty, or a copy of the table at
     * {@code sharedOffset} (non-zero) that a snapshot shares. The new table's refcount reaches the disk first, then
     * the table, then the L1 entry (with COPIED) that points to it, each write followed by a sync, so a crash
     * leaves at worst a leaked cluster. The shared table loses this image's reference after the next flush, like
     * any other free; the snapshot keeps it.
     *
     * <p>Each sync is of the ranges just written ({@link Storage#flushRange}), where QEMU syncs the whole file with
     * the guest data the page cache holds: the order concerns these writes alone.
     */
    private long allocateL2(int l1Index, long sharedOffset) throws IOException {
        file.event(StorageEvent.L2_ALLOC);
        if (lazyRefcounts) {
            // In the same hold of the lock as the allocation (every caller holds it), as in ClusterSupply.allocate.
            headerBits.markDirty();
        }
        long l2Offset = refcounts.allocate(1).bytes();
        // 1. The refcount of the new table (with every refcount change the cache held) before anything points to it;
        // with lazy refcounts the dirty bit stands in for it.
        if (!lazyRefcounts) {
            writeBackRefcounts().flush(file);
        }
        // 2. The table (empty, or the shared table's current entries), before the L1 entry that points to it.
        overlap.check(l2Offset, geometry().clusterSize(), "new L2 table");
        TableCache l2Cache = mapper.l2Cache();
        int sliceSize = l2Cache.sliceSize();
        for (long off = 0; off < geometry().clusterSize(); off += sliceSize) {
            byte[] shared = sharedOffset == 0 ? null : l2Cache.get(sharedOffset + off).data();
            Slice s = l2Cache.create(l2Offset + off);
            if (shared != null) {
                System.arraycopy(shared, 0, s.data(), 0, sliceSize);
                s.markDirty();
            }
            l2Cache.writeNow(s);
        }
        file.flushRange(l2Offset, geometry().clusterSize());
        // 3. The L1 entry.
        file.event(StorageEvent.L1_UPDATE);
        long entry = L1Entry.of(l2Offset, true);
        file.writeDurably(ByteBuffer.allocate(8).putLong(0, entry), l1Offset + 8L * l1Index);
        mapper.l1().set(l1Index, entry);
        // 4. The shared table's refcount: the entry that dropped it is durable, but a request that looked the
        // table up before the switch may still read it, so the decrease waits for the next flush's drain.
        if (sharedOffset != 0) {
            frees.add(new HostCluster(sharedOffset >>> geometry().clusterBits()), 1, false);
        }
        return l2Offset;
    }

    /**
     * QEMU's qcow2_grow_l1_table, called with the image lock held exclusive: a new table of at least
     * {@code minEntries} (1.5 times the old size when that is more, unless {@code exact}) is allocated and written,
     * then the header points to it, each step synced; only then is the old table freed. Returns the new size in
     * entries.
     */
    int growL1(long minEntries, boolean exact) throws IOException {
        file.event(StorageEvent.L1_GROW);
        lock.lock();
        try {
            int oldSize = mapper.l1().length();
            if (minEntries > Limits.MAX_L1_BYTES / 8) {
                throw new ImageTooLargeException("L1 table would exceed " + Limits.MAX_L1_BYTES + " bytes");
            }
            long grown = exact ? minEntries
                    : Math.max(minEntries, Math.min(Limits.MAX_L1_BYTES / 8, oldSize + oldSize / 2L));
            int newSize = (int) grown;
            long cs = geometry().clusterSize();
            long clusters = (newSize * 8L + cs - 1) / cs;
            long newOffset = refcounts.allocate((int) clusters).bytes();
            byte[] table = new byte[(int) (clusters * cs)];
            for (int i = 0; i < oldSize; i++) {
                Bytes.putLong(table, i * 8, mapper.l1().get(i));
            }
            // 1. The new table's refcounts, 2. the table, 3. the header that points to it.
            writeBackRefcounts().flush(file);
            overlap.check(newOffset, table.length, "new L1 table");
            file.writeDurably(ByteBuffer.wrap(table), newOffset);
            file.writeDurably(HeaderField.L1_SIZE.encode(newSize, newOffset), HeaderField.L1_SIZE.offset());
            long oldOffset = l1Offset;
            long oldClusters = (oldSize * 8L + cs - 1) / cs;
            mapper.replaceL1(table, newSize);
            l1Offset = newOffset;
            // The header no longer points to the old table, durably: it can be freed at once.
            for (long c = 0; oldOffset != 0 && c < oldClusters; c++) {
                refcounts.update(new HostCluster((oldOffset >>> geometry().clusterBits()) + c), -1);
            }
            return newSize;
        } finally {
            lock.unlock();
        }
    }

    /** Writes a new table (not yet referenced) to clusters just allocated for it, after the overlap check; no sync. */
    void writeNewTable(long offset, byte[] table, String what) throws IOException {
        overlap.check(offset, table.length, what);
        file.write(ByteBuffer.wrap(table), offset);
    }

    /**
     * Writes {@code entries} over the active L1 table (which has exactly as many) and syncs, then installs them in
     * memory (QEMU's bdrv_pwrite_sync of the whole table in qcow2_snapshot_goto and qcow2_update_snapshot_refcount).
     */
    void writeActiveL1(long[] entries) throws IOException {
        if (entries.length != mapper.l1().length()) {
            throw new IllegalArgumentException(entries.length + " entries for an L1 table of " + mapper.l1().length());
        }
        byte[] table = new byte[entries.length * 8];
        for (int i = 0; i < entries.length; i++) {
            Bytes.putLong(table, i * 8, entries[i]);
        }
        file.event(StorageEvent.L1_UPDATE);
        lock.lock();
        try {
            file.write(ByteBuffer.wrap(table), l1Offset);
            file.flush();
            mapper.replaceL1(table, entries.length);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Writes {@code values} into the header, one a field from {@code first} on (see {@link HeaderField#encode}),
     * in one write, and syncs (size, snapshot table pointer).
     */
    void writeHeaderField(HeaderField first, long... values) throws IOException {
        ByteBuffer bytes = first.encode(values);
        lock.lock();
        try {
            file.write(bytes, first.offset());
            file.flush();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Writes every dirty refblock slice (no sync) and returns their ranges; the caller holds the lock and syncs them
     * next, before a write that relies on these refcounts. A flush may be writing older copies of the same slices
     * meanwhile (it copies them under the lock and writes them without it): such a write is waited for and this
     * newer copy written after it, never the reverse (Slice.writeIfNewer), so what the caller's sync makes durable
     * is its own copy. The older copy landing last left a new L2 table's refcount 0 on disk while the slice counted
     * as clean.
     */
    private RangesToFlush writeBackRefcounts() throws IOException {
        return refblockCache.writeBackRanges(refblockCache.copyDirty());
    }
}
