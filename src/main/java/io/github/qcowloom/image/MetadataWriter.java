package io.github.qcowloom.image;

import io.github.qcowloom.alloc.ClusterPool;
import io.github.qcowloom.alloc.CompressedAllocator;
import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.HostOffset;
import io.github.qcowloom.alloc.NewCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.Ticker;
import io.github.qcowloom.cache.Slice;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.UnaryOperator;

/**
 * Every change to L1, L2 and refcounts, under one metadata lock (QEMU's s->lock), held for metadata updates; guest
 * data I/O happens outside it, except where the image is held exclusively anyway (a resize zeroing the range it
 * exposes). This class makes the L2 entry changes (link, rewrite, compressed allocation) and wires the three parts
 * that do the rest: {@link ClusterSupply} hands out clusters (pool, reservations, direct allocations),
 * {@link TableAllocator} places tables (a new L2 table goes to disk at once, in QEMU's l2_allocate order; the L1 table
 * grows), {@link FlushOrder} flushes. Ordinary changes stay in the caches until {@link #flush}, which orders them:
 * refcount blocks, sync (with the external data file, if any), L2 slices, sync, then the deferred frees. Snapshot
 * operations and resizes run {@link #exclusively}. The L2 slice a change goes into is pinned in the cache from its
 * lookup to the change ({@link TableAllocator#writableSlice}): readers evict slices under the cache's own lock, not
 * under this one.
 *
 * <p>The image's lock order (this is the one statement of it; the other classes point here):
 * <ol>
 * <li>for an encrypted image, the wait of a write, zeroing or discard in {@link SerialisingWrites} (until no write in
 *     flight overlaps its sectors), entered before any lock below and left after all of them;
 * <li>the flush lock (FlushOrder's), taken by flushes and by exclusive holders (table edits, resize);
 * <li>the image lock ({@link Qcow2Image}'s ReentrantReadWriteLock): requests hold it shared, exclusive holders
 *     exclusive (FlushOrder takes that side as its drain);
 * <li>one guest cluster's lock ({@link ClusterLocks}), taken by requests that copy on write, discard or zero, and by
 *     a prefetch's copy-on-read ({@link CopyOnRead}, which reads the backing chain under it); or
 *     several, taken in ascending order by a write of whole new clusters ({@link WritePath}), the only holder of
 *     more than one; under the exclusive image lock no request holds one, so a resize may take them after the
 *     metadata lock;
 * <li>the metadata lock ({@link #lock}, created here and shared with the three parts: the caches, the refcounts,
 *     the deferred frees, the flush's linked end and changes of the supply's unreferenced count);
 * <li>{@link HeaderBits}' lock, innermost: it only writes and syncs the header's bits (or, in a table edit, the
 *     whole header);
 * <li>a cache's lock or a slice's write lock, held around one map operation or one write only (see TableCache
 *     and Slice), taking nothing.
 * </ol>
 * The cluster pool has no lock of its own in this order (see {@link ClusterSupply}).
 *
 * <p>The dirty bit and the allocations it covers: set (or found set) in the same hold of the metadata lock as the
 * allocation, and cleared only by {@link FlushOrder#flushUntilClean}, holding the flush, image and metadata locks
 * (see {@link ClusterSupply}).
 */
final class MetadataWriter {
    private final ReentrantLock lock = new ReentrantLock();
    private final Storage file;
    private final ClusterMapper mapper;
    private final DeferredFrees frees = new DeferredFrees();
    /** Packs compressed clusters into host clusters; guarded by {@link #lock}. */
    private final CompressedAllocator compressedBytes;
    private final boolean hasBacking;
    private final HeaderBits headerBits;
    /**
     * Lazy refcounts (compatible bit 0): refcount blocks are written only at close or when idle, so nothing waits
     * for them; the image is marked dirty before the first allocation, and a crash is repaired on the next open.
     */
    private final boolean lazyRefcounts;
    private final ClusterSupply supply;
    private final TableAllocator tables;
    private final FlushOrder flushOrder;
    private final OverlapCheck overlap;
    /** Read here only by {@link #countReferenced}; the three parts change it. */
    private final RefcountTable refcounts;

    MetadataWriter(Storage file, Storage dataFile, ClusterMapper mapper, TableCache refblockCache,
            RefcountTable refcounts, long l1Offset, Lock drain, boolean hasBacking, HeaderBits headerBits,
            boolean lazyRefcounts) {
        this.file = file;
        this.mapper = mapper;
        this.refcounts = refcounts;
        this.hasBacking = hasBacking;
        this.headerBits = headerBits;
        this.lazyRefcounts = lazyRefcounts;
        this.tables = new TableAllocator(file, mapper, refblockCache, refcounts, lock, frees, headerBits,
                lazyRefcounts, l1Offset);
        this.supply = new ClusterSupply(file, mapper.geometry(), refcounts, lock, headerBits, lazyRefcounts,
                tables.overlap());
        this.flushOrder = new FlushOrder(file, dataFile, mapper, refblockCache, refcounts, lock, frees, drain,
                headerBits, supply, lazyRefcounts);
        this.overlap = tables.overlap();
        this.compressedBytes = new CompressedAllocator(refcounts, mapper.geometry().clusterBits());
    }

    /** The cluster supply (the pool's source); for tests in this package. */
    ClusterSupply supply() {
        return supply;
    }

    /** The flush; for tests in this package. */
    FlushOrder flushOrder() {
        return flushOrder;
    }

    /** Starts a cluster pool fed by the supply; the image must support the dirty bit (v3). Idle, it flushes clean. */
    void startPool(int low, int high, int max, Ticker ticker, ClusterSupply.Corruption onCorruption) {
        supply.startPool(low, high, max, ticker, flushOrder::flushUntilClean, onCorruption);
    }

    ClusterPool pool() {
        return supply.pool();
    }

    /** {@link RefcountTable#countReferenced}, under the metadata lock (QEMU counts under s->lock too). */
    long countReferenced(long end, long limit) throws IOException {
        lock.lock();
        try {
            return refcounts.countReferenced(end, limit);
        } finally {
            lock.unlock();
        }
    }

    /** Reserves clusters for a batch of writes, see {@link ClusterSupply#reserve}. */
    void reserve(int n) throws IOException {
        supply.reserve(n);
    }

    /** Stops the pool without writing anything: the image was found corrupt, its metadata is not to be trusted. */
    void abandon() throws IOException {
        supply.abandon();
    }

    /** Stops the pool (giving its clusters and the reserved ones back), flushes everything, clears the dirty bit. */
    void close() throws IOException {
        supply.close();
        flushOrder.flushUntilClean();
    }

    private ImageGeometry geometry() {
        return mapper.geometry();
    }

    /** A host cluster for data, see {@link ClusterSupply#allocateDataCluster}. */
    NewCluster allocateDataCluster() throws IOException {
        return supply.allocateDataCluster();
    }

    /** See {@link ClusterSupply#hasReserved}. */
    boolean hasReservedClusters() {
        return supply.hasReserved();
    }

    /** Contiguous host clusters for a run of whole clusters, see {@link ClusterSupply#allocateDataRun}. */
    List<NewCluster> allocateDataRun(int n) throws IOException {
        return supply.allocateDataRun(n);
    }

    /** Allocates guest {@code cluster}'s L2 table if it has none, see {@link TableAllocator#ensureL2}. */
    void ensureL2(GuestCluster cluster) throws IOException {
        tables.ensureL2(cluster.index());
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
     * Points {@code cluster}'s L2 entry at the data cluster at {@code host}, which this image owns alone
     * (COPIED), and dereferences what the old entry held, once the change is durable. The data has already been
     * written.
     */
    void link(GuestCluster cluster, HostOffset host) throws IOException {
        link(cluster.index(), L2Entry.owned(host.bytes()));
    }

    /**
     * As {@link #link(GuestCluster, HostOffset)}, the entry also flagged as reading zeroes: a preallocated zero
     * cluster (QEMU's ZERO_ALLOC), as a metadata preallocation leaves one that read as zeroes.
     */
    void linkZero(GuestCluster cluster, HostOffset host) throws IOException {
        link(cluster.index(), L2Entry.withZeroFlag(L2Entry.owned(host.bytes())));
    }

    /**
     * Points {@code cluster}'s L2 entry at the compressed cluster {@code descriptor} (with extended L2, with a
     * bitmap of 0, as a compressed cluster has it), as {@link #link(GuestCluster, HostOffset)} does.
     */
    void linkCompressed(GuestCluster cluster, long descriptor) throws IOException {
        link(cluster.index(), descriptor);
    }

    private void link(long cluster, long newEntry) throws IOException {
        lock.lock();
        Slice slice = null;
        try {
            slice = tables.writableSlice(cluster);
            long old = mapper.words(slice, cluster).entry();
            mapper.setWords(slice, cluster, new L2Words(newEntry, 0));
            if ((newEntry & L2Entry.COMPRESSED) == 0) {
                flushOrder.linked(L2Entry.hostOffset(newEntry) + geometry().clusterSize());
            }
            if (L2Entry.hostOffset(old) != L2Entry.hostOffset(newEntry)) {
                dereferenceLater(old, false);
            }
        } finally {
            tables.unpin(slice);
            lock.unlock();
        }
    }

    /**
     * Extended L2: points {@code cluster}'s entry at the data cluster at {@code host} (owned alone) and marks
     * subclusters {@code [from, to)} allocated in its bitmap as the bitmap is now, so that what another request did
     * to the other subclusters meanwhile (write-zeroes, say) stays; dereferences the old entry's cluster, once the
     * change is durable, when the offset changed. The data of those subclusters has already been written.
     */
    void linkSubclusters(GuestCluster cluster, HostOffset host, int from, int to) throws IOException {
        long index = cluster.index();
        long newEntry = L2Entry.owned(host.bytes());
        lock.lock();
        Slice slice = null;
        try {
            slice = tables.writableSlice(index);
            L2Words old = mapper.words(slice, index);
            mapper.setWords(slice, index, new L2Words(newEntry, L2Entry.withAllocated(old.bitmap(), from, to)));
            flushOrder.linked(L2Entry.hostOffset(newEntry) + geometry().clusterSize());
            if (L2Entry.hostOffset(old.entry()) != L2Entry.hostOffset(newEntry)) {
                dereferenceLater(old.entry(), false);
            }
        } finally {
            tables.unpin(slice);
            lock.unlock();
        }
    }

    /**
     * Extended L2: marks subclusters {@code [from, to)} allocated if {@code cluster}'s entry word is still the one
     * {@code owned} was decoded from, whose cluster already holds their data (written in place). False, changing
     * nothing, if a discard or write-zeroes replaced the entry meanwhile: the cluster written to is on its way to
     * being freed, and the caller must write again.
     */
    boolean markAllocated(GuestCluster cluster, L2Mapping.Data owned, int from, int to) throws IOException {
        long index = cluster.index();
        long entry = owned.words().entry();
        lock.lock();
        Slice slice = null;
        try {
            slice = tables.writableSlice(index);
            L2Words old = mapper.words(slice, index);
            if (old.entry() != entry) {
                return false;
            }
            mapper.setWords(slice, index, new L2Words(entry, L2Entry.withAllocated(old.bitmap(), from, to)));
            return true;
        } finally {
            tables.unpin(slice);
            lock.unlock();
        }
    }

    /**
     * Rewrites both words of the L2 entries of {@code count} clusters from {@code first} with {@code rewrite} (in a
     * standard table the bitmap is 0 and the rewrite must leave it so), and dereferences, after the next flush,
     * what each replaced entry held when its offset changed. Like QEMU's get_cluster_table in discard and
     * write-zeroes, it allocates absent L2 tables (and copies shared ones) even where no entry changes, so that
     * tables and later data clusters land where QEMU puts them.
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
                        dereferenceLater(old.entry(), true);
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

    /** True if the calling thread holds the metadata lock: it runs an exclusive edit (resize's zeroing, say). */
    boolean heldByCurrentThread() {
        return lock.isHeldByCurrentThread();
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

    /**
     * Rewrites the whole header and syncs, see {@link HeaderBits#rewriteHeader}; only under the metadata lock (a
     * table edit), so that no other field is written in place meanwhile.
     */
    void rewriteHeader(UnaryOperator<Header> change) throws IOException {
        if (!lock.isHeldByCurrentThread()) {
            throw new IllegalStateException("the header is rewritten under the metadata lock only");
        }
        headerBits.rewriteHeader(change);
    }

    /** Where the bitmap directory is, which no write may touch (OverlapCheck). */
    void bitmapDirectory(long offset, long bytes) {
        overlap.bitmapDirectory(offset, bytes);
    }

    boolean hasBacking() {
        return hasBacking;
    }

    /**
     * Queues the clusters an L2 entry held for a refcount decrease after the next flush; {@code release} for a
     * guest's discard (QEMU's QCOW2_DISCARD_REQUEST), whose freed clusters are discarded in the host file as well.
     * A copy on write frees its old cluster without (QEMU's qcow2_alloc_cluster_link_l2: QCOW2_DISCARD_NEVER).
     */
    private void dereferenceLater(long entry, boolean release) {
        int bits = geometry().clusterBits();
        ClusterType type = L2Entry.type(entry, geometry().extendedL2(), geometry().hasDataFile());
        switch (type) {
            case NORMAL, ZERO_ALLOC -> {
                long host = L2Entry.hostOffset(entry);
                if (host != 0 && !geometry().hasDataFile()) {
                    frees.add(new HostCluster(host >>> bits), 1, release);
                }
            }
            case COMPRESSED -> {
                CompressedDescriptor d = CompressedDescriptor.decode(entry, bits);
                long first = d.firstHostCluster(bits);
                frees.add(new HostCluster(first), d.lastHostCluster(bits) - first + 1, release);
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

    /** Runs {@code body} with the image held exclusively, see {@link FlushOrder#exclusively}. */
    <T> T exclusively(FlushOrder.Exclusive<T> body) throws IOException {
        return flushOrder.exclusively(body);
    }

    /** Flushes until nothing is pending, see {@link FlushOrder#flushEverything}. */
    void flushEverything() throws IOException {
        flushOrder.flushEverything();
    }

    /**
     * For an exclusive edit of many L2 tables (a resize's zeroing or preallocation): the tables changed stay cached
     * until written back, and every lookup walks the cache, so they are written back, as a flush writes them, once
     * the cache holds twice its capacity. The edit's cost then grows with the tables, not with their square.
     */
    void writeBackWhenCacheFull() throws IOException {
        if (mapper.l2Cache().size() > 2 * mapper.l2Cache().capacity()) {
            flushEverything();
        }
    }

    /** The end of the last cluster in {@code [from, to)} with a reference (refcount not 0), or {@code from}. */
    long referencedEnd(long from, long to) throws IOException {
        int bits = geometry().clusterBits();
        lock.lock();
        try {
            for (long c = (to >>> bits) - 1; c >= 0 && c << bits >= from; c--) {
                if (refcounts.get(new HostCluster(c)) != 0) {
                    return (c + 1) << bits;
                }
            }
            return from;
        } finally {
            lock.unlock();
        }
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
    void writeHeaderField(HeaderField first, long... values) throws IOException {
        tables.writeHeaderField(first, values);
    }

    /** Makes every completed write durable, in crash-safe order, see {@link FlushOrder#flush()}. */
    void flush() throws IOException {
        flushOrder.flush();
    }
}
