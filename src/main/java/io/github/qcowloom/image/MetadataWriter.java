package io.github.qcowloom.image;

import io.github.qcowloom.alloc.ClusterPool;
import io.github.qcowloom.alloc.CompressedAllocator;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.cache.Slice;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongUnaryOperator;
import java.util.function.UnaryOperator;

/**
 * Every change to L1, L2 and refcounts, under one metadata lock (QEMU's s->lock), held for cache updates only:
 * data I/O happens outside it. Ordinary changes stay in the caches until {@link #flush}, which orders them:
 * refcount blocks, sync (with the external data file, if any), L2 slices, sync, then the deferred frees. A new L2
 * table (or the copy of one a snapshot shares) goes to disk at once, in QEMU's l2_allocate order (see
 * {@link TableAllocator}, which places tables). Snapshot
 * operations run {@link #exclusively}. The L2 slice a change goes into is pinned in the cache from its lookup to the
 * change ({@link TableAllocator#writableSlice}): readers evict slices under the cache's own lock, not under this one.
 *
 * <p>Locks, in the order they are taken: the flush lock ({@link #flushLock}), the image lock ({@link #drain}, its
 * exclusive side), the metadata lock ({@link #lock}: the caches, the refcounts, the deferred frees, {@link #linkedEnd}
 * and changes of the supply's unreferenced count), then {@link HeaderBits}' lock, innermost (it only writes and
 * syncs the header's bits); a cache's lock and a slice's write lock are held around one map operation or one write
 * only (see TableCache and Slice) and take nothing. Requests hold the image lock shared and take the metadata lock
 * under it. The cluster pool's lock is outside this order (see {@link ClusterSupply}, which hands out clusters).
 *
 * <p>The dirty bit and the allocations it covers (the pool's and a batch's clusters, and with lazy refcounts every
 * refcount): the bit is set (or found set) in the same hold of the metadata lock as the allocation, and cleared only by
 * {@link #flushUntilClean}, which decides and writes the clean holding all three locks, so that no allocation can
 * slip between its check and the clean (see {@link ClusterSupply}).
 */
final class MetadataWriter {
    private final ReentrantLock lock = new ReentrantLock();
    /**
     * Test switch that breaks the first ordering rule: flushes write L2 slices before refcount blocks with no sync
     * between them. Only the crash-kit test that proves the kit catches broken ordering sets it.
     */
    static volatile boolean l2BeforeRefcountsForTest;
    /** Serialises flushes, so that one flush's write-back cannot overtake another's. */
    private final ReentrantLock flushLock = new ReentrantLock();
    private final Storage file;
    private final ClusterSupply supply;
    /**
     * The external data file, or null when guest data lives in the image file. Its clusters have no refcounts
     * (QEMU maps guest offset to the same offset there), so only its sync takes part in the ordering.
     */
    private final Storage dataFile;
    private final ClusterMapper mapper;
    private final TableCache refblockCache;
    private final RefcountTable refcounts;
    private final DeferredFrees frees = new DeferredFrees();
    /** Packs compressed clusters into host clusters; guarded by {@link #lock}. */
    private final CompressedAllocator compressedBytes;
    /**
     * The end of the highest data cluster an entry was pointed at since the last flush; guarded by {@link #lock}.
     * The flush extends the data's file to it before writing the entries, see {@link #flush(boolean)}.
     */
    private long linkedEnd;
    /**
     * The image lock's exclusive side. Deferred frees are applied holding it, so that no request that looked up
     * a cluster before it was freed (an in-place write in flight, say) can still touch it once it is reusable.
     */
    private final Lock drain;
    private final boolean hasBacking;
    private final HeaderBits headerBits;
    private final TableAllocator tables;
    private final OverlapCheck overlap;
    /**
     * Lazy refcounts (compatible bit 0): refcount blocks are written only at close or when idle, so nothing waits
     * for them; the image is marked dirty before the first allocation, and a crash is repaired on the next open.
     */
    private final boolean lazyRefcounts;

    MetadataWriter(Storage file, Storage dataFile, ClusterMapper mapper, TableCache refblockCache,
            RefcountTable refcounts, long l1Offset, Lock drain, boolean hasBacking, HeaderBits headerBits,
            boolean lazyRefcounts) {
        this.file = file;
        this.dataFile = dataFile;
        this.mapper = mapper;
        this.refblockCache = refblockCache;
        this.refcounts = refcounts;
        this.drain = drain;
        this.hasBacking = hasBacking;
        this.headerBits = headerBits;
        this.lazyRefcounts = lazyRefcounts;
        this.tables = new TableAllocator(file, mapper, refblockCache, refcounts, lock, frees, headerBits,
                lazyRefcounts, l1Offset);
        this.overlap = tables.overlap();
        this.compressedBytes = new CompressedAllocator(refcounts, mapper.geometry().clusterBits());
        this.supply = new ClusterSupply(file, mapper.geometry(), refcounts, lock, headerBits, lazyRefcounts);
    }

    /** The cluster supply (the pool's source); for tests in this package. */
    ClusterSupply supply() {
        return supply;
    }

    /** Starts a cluster pool fed by the supply; the image must support the dirty bit (v3). Idle, it flushes clean. */
    void startPool(int low, int high, int max, io.github.qcowloom.api.Ticker ticker) {
        supply.startPool(low, high, max, ticker, this::flushUntilClean);
    }

    ClusterPool pool() {
        return supply.pool();
    }

    /** Reserves clusters for a batch of writes, see {@link ClusterSupply#reserve}. */
    void reserve(int n) throws IOException {
        supply.reserve(n);
    }

    /**
     * Flushes until nothing is pending (a flush queues the frees the next one writes), then marks clean unless
     * allocated clusters are unreferenced (pooled, reserved, or on their way). The last check and the clean happen
     * holding the flush lock (no flush is between its write-back and its sync), the image lock exclusive (no request
     * is between taking a cluster and linking it) and the metadata lock (no allocation, refill or give-back runs): so
     * every refcount and entry is on disk when the bit is cleared, and an allocation after it sets the bit again.
     */
    void flushUntilClean() throws IOException {
        flushLock.lock();
        try {
            flushEverything(); // the bulk, while requests go on
            drain.lock();
            try {
                lock.lock();
                try {
                    // What requests changed meanwhile; nothing can add to it now.
                    while (hasPendingMetadata()) {
                        flush(true);
                    }
                    if (supply.unreferenced() == 0) {
                        // After the syncs above: the bit is cleared only once everything it covered is durable.
                        headerBits.markClean();
                    }
                } finally {
                    lock.unlock();
                }
            } finally {
                drain.unlock();
            }
        } finally {
            flushLock.unlock();
        }
    }

    /** Stops the pool without writing anything: the image was found corrupt, its metadata is not to be trusted. */
    void abandon() throws IOException {
        supply.abandon();
    }

    /** Stops the pool (giving its clusters and the reserved ones back), flushes everything, clears the dirty bit. */
    void close() throws IOException {
        supply.close();
        flushUntilClean();
    }

    private ImageGeometry geometry() {
        return mapper.geometry();
    }

    /** A host cluster for data, see {@link ClusterSupply#allocateDataCluster}. */
    long allocateDataCluster() throws IOException {
        return supply.allocateDataCluster();
    }

    /** Allocates guest {@code cluster}'s L2 table if it has none, see {@link TableAllocator#ensureL2}. */
    void ensureL2(long cluster) throws IOException {
        tables.ensureL2(cluster);
    }

    /**
     * QEMU's qcow2_alloc_compressed_cluster_offset up to the L2 update: finds guest {@code cluster}'s L2 table
     * (allocating it first, in l2_allocate's order, as QEMU does before the bytes), refuses a cluster that has a
     * host offset (compression cannot overwrite anything: QEMU fails with EIO), and reserves {@code size} packed
     * bytes whose refcounts rise in the cache. The caller holds the guest cluster's lock, writes the bytes, then
     * {@link #link}s the descriptor: the refcount increase is thus in every flush that carries the entry.
     */
    long allocateCompressed(long cluster, int size) throws IOException {
        if (lazyRefcounts) {
            // As in ClusterSupply.allocateDataCluster: durable before the refcount it stands in for, set twice.
            headerBits.markDirty();
        }
        file.event(StorageEvent.CLUSTER_ALLOC);
        lock.lock();
        Slice slice = null;
        try {
            if (lazyRefcounts) {
                headerBits.markDirty();
            }
            slice = tables.writableSlice(cluster);
            long old = slice.getLong(mapper.entryInSlice(cluster));
            if (L2Entry.hostOffset(old) != 0) {
                throw new ImageException(String.format("Compressed write to guest offset %#x refused: the cluster is"
                        + " already allocated (L2 entry %#x), and compression cannot overwrite anything",
                        cluster << geometry().clusterBits(), old));
            }
            long host = compressedBytes.allocate(size);
            overlap.check(host, size, "compressed data write");
            return host;
        } finally {
            tables.unpin(slice);
            lock.unlock();
        }
    }

    /**
     * Points {@code cluster}'s L2 entry at {@code newEntry} (with extended L2, with a bitmap of 0, as a compressed
     * cluster has it) and dereferences what the old entry held, once the change is durable. The data the new entry
     * points to has already been written.
     */
    void link(long cluster, long newEntry) throws IOException {
        lock.lock();
        Slice slice = null;
        try {
            slice = tables.writableSlice(cluster);
            long old = mapper.words(slice, cluster).entry();
            mapper.setWords(slice, cluster, new L2Words(newEntry, 0));
            if ((newEntry & L2Entry.COMPRESSED) == 0) {
                linkedEnd = Math.max(linkedEnd, L2Entry.hostOffset(newEntry) + geometry().clusterSize());
            }
            if (L2Entry.hostOffset(old) != L2Entry.hostOffset(newEntry)) {
                dereferenceLater(old);
            }
        } finally {
            tables.unpin(slice);
            lock.unlock();
        }
    }

    /**
     * Extended L2: points {@code cluster}'s entry at {@code newEntry} and marks subclusters {@code [from, to)}
     * allocated in its bitmap as the bitmap is now, so that what another request did to the other subclusters
     * meanwhile (write-zeroes, say) stays; dereferences the old entry's cluster, once the change is durable, when
     * the offset changed. The data of those subclusters has already been written.
     */
    void linkSubclusters(long cluster, long newEntry, int from, int to) throws IOException {
        lock.lock();
        Slice slice = null;
        try {
            slice = tables.writableSlice(cluster);
            L2Words old = mapper.words(slice, cluster);
            mapper.setWords(slice, cluster, new L2Words(newEntry, L2Entry.withAllocated(old.bitmap(), from, to)));
            linkedEnd = Math.max(linkedEnd, L2Entry.hostOffset(newEntry) + geometry().clusterSize());
            if (L2Entry.hostOffset(old.entry()) != L2Entry.hostOffset(newEntry)) {
                dereferenceLater(old.entry());
            }
        } finally {
            tables.unpin(slice);
            lock.unlock();
        }
    }

    /**
     * Extended L2: marks subclusters {@code [from, to)} allocated if {@code cluster}'s entry is still
     * {@code entry}, whose cluster already holds their data (written in place). False, changing nothing, if a
     * discard or write-zeroes replaced the entry meanwhile: the cluster written to is on its way to being freed,
     * and the caller must write again.
     */
    boolean markAllocated(long cluster, long entry, int from, int to) throws IOException {
        lock.lock();
        Slice slice = null;
        try {
            slice = tables.writableSlice(cluster);
            L2Words old = mapper.words(slice, cluster);
            if (old.entry() != entry) {
                return false;
            }
            mapper.setWords(slice, cluster, new L2Words(entry, L2Entry.withAllocated(old.bitmap(), from, to)));
            return true;
        } finally {
            tables.unpin(slice);
            lock.unlock();
        }
    }

    /**
     * Rewrites the L2 entries of {@code count} clusters from {@code first} with {@code rewrite} (old entry to new
     * entry) and dereferences, after the next flush, what each replaced entry held when its offset changed. Like
     * QEMU's get_cluster_table in discard and write-zeroes, it allocates absent L2 tables (and copies shared ones)
     * even where no entry changes, so that tables and later data clusters land where QEMU puts them.
     */
    void rewrite(long first, long count, LongUnaryOperator rewrite) throws IOException {
        rewriteWords(first, count, w -> new L2Words(rewrite.applyAsLong(w.entry()), w.bitmap()));
    }

    /**
     * {@link #rewrite} for both words of the entries; in a standard table the bitmap is 0 and the rewrite must
     * leave it so.
     */
    void rewriteWords(long first, long count, UnaryOperator<L2Words> rewrite) throws IOException {
        lock.lock();
        Slice slice = null;
        try {
            for (long c = first; c < first + count; c++) {
                slice = tables.writableSlice(c);
                L2Words old = mapper.words(slice, c);
                L2Words updated = rewrite.apply(old);
                if (!updated.equals(old)) {
                    mapper.setWords(slice, c, updated);
                    if (L2Entry.hostOffset(old.entry()) != L2Entry.hostOffset(updated.entry())
                            || L2Entry.type(old.entry(), false, false) == ClusterType.COMPRESSED) {
                        dereferenceLater(old.entry());
                    }
                }
                tables.unpin(slice);
                slice = null;
            }
        } finally {
            tables.unpin(slice);
            lock.unlock();
        }
    }

    /** Refuses a data write to {@code [host, host + length)} that would land on metadata. */
    void checkDataWrite(long host, long length) throws IOException {
        overlap.check(host, length, "data write");
    }

    /** Sets the dirty bit and syncs (once): a table edit's changes may leak or leave COPIED flags to repair. */
    void markDirty() throws IOException {
        headerBits.markDirty();
    }

    /** Marks the image corrupt on disk (QEMU's qcow2_signal_corruption on a writable image). */
    void markCorrupt() throws IOException {
        headerBits.markCorrupt();
    }

    /** Where the active L1 table lives; changes when it grows. */
    long l1Offset() {
        return tables.l1Offset();
    }

    /** The snapshot table and snapshot L1 tables, which no write may touch; replaced when the table changes. */
    void snapshotAreas(SnapshotAreas areas) {
        overlap.snapshotAreas(areas);
    }

    boolean hasBacking() {
        return hasBacking;
    }

    /** Queues the clusters an L2 entry held for a refcount decrease after the next flush. */
    private void dereferenceLater(long entry) {
        int bits = geometry().clusterBits();
        ClusterType type = L2Entry.type(entry, geometry().extendedL2(), geometry().hasDataFile());
        switch (type) {
            case NORMAL, ZERO_ALLOC -> {
                long host = L2Entry.hostOffset(entry);
                if (host != 0 && !geometry().hasDataFile()) {
                    frees.add(host >>> bits, 1);
                }
            }
            case COMPRESSED -> {
                CompressedDescriptor d = CompressedDescriptor.decode(entry, bits);
                long first = d.firstHostCluster(bits);
                frees.add(first, d.lastHostCluster(bits) - first + 1);
            }
            case UNALLOCATED, ZERO_PLAIN -> {
                // Nothing was allocated.
            }
        }
    }

    /** Grows the active L1 table, see {@link TableAllocator#growL1}. */
    int growL1(long minEntries, boolean exact) throws IOException {
        return tables.growL1(minEntries, exact);
    }

    /** A step of an exclusive edit; it may throw what the I/O throws. */
    @FunctionalInterface
    interface Exclusive<T> {
        T run() throws IOException;
    }

    /**
     * Runs {@code body} while nothing else touches the metadata: the flush lock keeps flushes (and the pool's idle
     * flush) out, the image lock's exclusive side keeps requests out (they wait, then continue), the metadata lock
     * keeps the pool's refills out. Everything pending is flushed before {@code body} runs (so no deferred free is
     * outstanding and every refcount is current) and after it, and then the dirty bit an edit set is cleared (unless
     * allocated clusters are unreferenced, see {@link #flushUntilClean}). The lock order is a flush's: flush lock,
     * image lock, metadata lock.
     */
    <T> T exclusively(Exclusive<T> body) throws IOException {
        flushLock.lock();
        try {
            drain.lock();
            try {
                lock.lock();
                try {
                    flushEverything();
                    T result = body.run();
                    flushUntilClean();
                    return result;
                } finally {
                    lock.unlock();
                }
            } finally {
                drain.unlock();
            }
        } finally {
            flushLock.unlock();
        }
    }

    /** Flushes refcounts (even with lazy refcounts), L2 slices and deferred frees until nothing is pending. */
    void flushEverything() throws IOException {
        do {
            flush(true);
        } while (hasPendingMetadata());
    }

    /** Clusters for a table written at once, see {@link ClusterSupply#allocateMetadata}. */
    long allocateMetadata(long bytes) throws IOException {
        return supply.allocateMetadata(bytes);
    }

    /** Frees clusters whose last reference is durably gone, see {@link ClusterSupply#freeNow}. */
    void freeNow(long offset, long bytes) throws IOException {
        supply.freeNow(offset, bytes);
    }

    /** Writes a new, unreferenced table, see {@link TableAllocator#writeNewTable}. */
    void writeNewTable(long offset, byte[] table, String what) throws IOException {
        tables.writeNewTable(offset, table, what);
    }

    /** Rewrites the active L1 table and syncs, see {@link TableAllocator#writeActiveL1}. */
    void writeActiveL1(long[] entries) throws IOException {
        tables.writeActiveL1(entries);
    }

    /** Writes a header field and syncs, see {@link TableAllocator#writeHeaderField}. */
    void writeHeaderField(long offset, ByteBuffer bytes) throws IOException {
        tables.writeHeaderField(offset, bytes);
    }

    /**
     * Makes every completed write durable, in crash-safe order: refcount increases and data before the L2
     * entries that point to them; entry removals before the refcount decreases they allow.
     */
    void flush() throws IOException {
        flush(!lazyRefcounts);
    }

    /** The flush; {@code withRefcounts} false leaves refcount blocks in the cache (lazy refcounts). */
    private void flush(boolean withRefcounts) throws IOException {
        flushLock.lock();
        try {
            List<TableCache.DirtyCopy> refblocks;
            List<TableCache.DirtyCopy> l2;
            List<DeferredFrees.Run> toFree;
            long dataEnd;
            // One consistent cut: every L2 entry copied here was set after its refcount rose and its data was
            // written, so both are in this cut too.
            lock.lock();
            try {
                refblocks = withRefcounts ? refblockCache.copyDirty() : List.of();
                l2 = mapper.l2Cache().copyDirty();
                toFree = frees.takeAll();
                dataEnd = linkedEnd;
                linkedEnd = 0;
            } finally {
                lock.unlock();
            }
            if (l2BeforeRefcountsForTest) {
                mapper.l2Cache().writeBack(l2);
                refblockCache.writeBack(refblocks);
                file.flush();
                return;
            }
            // A copy older than what the lock's holder wrote meanwhile (allocateL2, growL1, a new refblock) is skipped:
            // the newer one is on disk already, and the sync below covers it as well.
            refblockCache.writeBack(refblocks);
            // A write into a fresh cluster writes only its data, so the file may end inside the cluster. Before an
            // entry pointing to it can be durable, the file reaches the cluster's end (one small write per flush):
            // every later write into the cluster is then in place, never an append that a crash could leave as
            // garbage on a file system that persists a file's size before its data (crashkit's torn appends).
            if (dataEnd > 0) {
                (dataFile != null ? dataFile : file).extendTo(dataEnd);
            }
            file.event(StorageEvent.FLUSH);
            file.flush(); // refcounts and data before the L2 entries
            if (dataFile != null) {
                // Guest data in the external data file, too, before the L2 entries that point to it (QEMU leaves
                // this to the block layer's flush of every child; here it is part of the ordering).
                dataFile.flush();
            }
            if (!l2.isEmpty()) {
                file.event(StorageEvent.L2_UPDATE);
                mapper.l2Cache().writeBack(l2);
                file.flush(); // the entries, and with them the removals that allow the frees below
            }
            if (!toFree.isEmpty()) {
                file.event(StorageEvent.CLUSTER_FREE);
                drain.lock();
                lock.lock();
                try {
                    for (DeferredFrees.Run r : toFree) {
                        for (long c = r.firstCluster(); c < r.firstCluster() + r.count(); c++) {
                            // A cluster that drops to 0 stops the compressed packing there: the RefcountTable
                            // tells the CompressedAllocator.
                            refcounts.update(c, -1);
                        }
                    }
                } finally {
                    lock.unlock();
                    drain.unlock();
                }
            }
        } finally {
            flushLock.unlock();
        }
    }

    /** True if a flush would write metadata (for close, which flushes until nothing is left). */
    boolean hasPendingMetadata() {
        lock.lock();
        try {
            return refblockCache.hasDirty() || mapper.l2Cache().hasDirty() || !frees.isEmpty();
        } finally {
            lock.unlock();
        }
    }
}
