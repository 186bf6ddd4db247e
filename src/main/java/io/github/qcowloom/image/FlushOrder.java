package io.github.qcowloom.image;

import io.github.qcowloom.alloc.FreedRuns;
import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.util.List;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The flush: what the caches hold reaches the disk in crash-safe order (refcount blocks, sync, L2 slices, sync, then
 * the deferred frees), the clean that clears the dirty bit, and the exclusive runs of snapshot operations and resizes.
 *
 * <p>Locks, in the order they are taken: the flush lock ({@link #flushLock}, this class's own), the image lock
 * ({@link #drain}, its exclusive side), the metadata lock ({@link #lock}, shared with {@link MetadataWriter},
 * {@link ClusterSupply} and {@link TableAllocator}: the caches, the refcounts, the deferred frees and
 * {@link #linkedEnd}), then {@link HeaderBits}' lock, innermost (it only writes and syncs the header's bits); a
 * cache's lock and a slice's write lock are held around one map operation or one write only (see TableCache and
 * Slice) and take nothing. Requests hold the image lock shared and take the metadata lock under it. A flush takes
 * the metadata lock only to copy (one consistent cut) and to apply the frees; it writes and syncs the copies without
 * it, under the flush lock alone, so that requests go on meanwhile. Applying the frees, it lets go of the image lock
 * before the metadata lock, so that requests go on while the host discards the clusters freed.
 *
 * <p>The image's whole lock order, cluster locks included, is stated once in {@link MetadataWriter}.
 */
final class FlushOrder {
    private final ReentrantLock lock;
    /** Serialises flushes, so that one flush's write-back cannot overtake another's. */
    private final ReentrantLock flushLock = new ReentrantLock();
    private final Storage file;
    /**
     * The external data file, or null when guest data lives in the image file. Its clusters have no refcounts
     * (QEMU maps guest offset to the same offset there), so only its sync takes part in the ordering.
     */
    private final Storage dataFile;
    private final ClusterMapper mapper;
    private final TableCache refblockCache;
    private final RefcountTable refcounts;
    /** Guarded by {@link #lock}. */
    private final DeferredFrees frees;
    /**
     * The image lock's exclusive side. Deferred frees are applied holding it, so that no request that looked up
     * a cluster before it was freed (an in-place write in flight, say) can still touch it once it is reusable.
     */
    private final Lock drain;
    private final HeaderBits headerBits;
    /** Whose unreferenced clusters keep the image dirty. */
    private final ClusterSupply supply;
    /** Lazy refcounts: an ordinary flush leaves refcount blocks in the cache. */
    private final boolean lazyRefcounts;
    /**
     * The end of the highest data cluster an entry was pointed at since the last flush; guarded by {@link #lock}.
     * The flush extends the data's file to it before writing the entries, see {@link #flush(boolean)}.
     */
    private long linkedEnd;
    /**
     * Breaks the first ordering rule: flushes write L2 slices before refcount blocks with no sync between them. Only
     * the crash-kit test that proves the kit catches broken ordering sets it (OrderingBitesTest).
     */
    private volatile boolean l2BeforeRefcounts;

    FlushOrder(Storage file, Storage dataFile, ClusterMapper mapper, TableCache refblockCache, RefcountTable refcounts,
            ReentrantLock lock, DeferredFrees frees, Lock drain, HeaderBits headerBits, ClusterSupply supply,
            boolean lazyRefcounts) {
        this.file = file;
        this.dataFile = dataFile;
        this.mapper = mapper;
        this.refblockCache = refblockCache;
        this.refcounts = refcounts;
        this.lock = lock;
        this.frees = frees;
        this.drain = drain;
        this.headerBits = headerBits;
        this.supply = supply;
        this.lazyRefcounts = lazyRefcounts;
    }

    /** For OrderingBitesTest only: makes every later flush write L2 slices before refcount blocks, unsynced. */
    void breakOrderingL2BeforeRefcounts() {
        l2BeforeRefcounts = true;
    }

    /**
     * An entry now points into the data cluster ending at {@code end}: the next flush extends the data's file to it
     * first. Called under the lock.
     */
    void linked(long end) {
        linkedEnd = Math.max(linkedEnd, end);
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
            holdingImageAndMetadata(() -> {
                // What requests changed meanwhile; nothing can add to it now.
                while (hasPendingMetadata()) {
                    flush(true);
                }
                if (supply.unreferenced() == 0) {
                    // After the syncs above: the bit is cleared only once everything it covered is durable.
                    headerBits.markClean();
                }
                return null;
            });
        } finally {
            flushLock.unlock();
        }
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
            return holdingImageAndMetadata(() -> {
                flushEverything();
                T result = body.run();
                flushUntilClean();
                return result;
            });
        } finally {
            flushLock.unlock();
        }
    }

    /** Runs {@code body} holding the image lock exclusive, then the metadata lock (after the flush lock). */
    private <T> T holdingImageAndMetadata(Exclusive<T> body) throws IOException {
        drain.lock();
        try {
            lock.lock();
            try {
                return body.run();
            } finally {
                lock.unlock();
            }
        } finally {
            drain.unlock();
        }
    }

    /** Flushes refcounts (even with lazy refcounts), L2 slices and deferred frees until nothing is pending. */
    void flushEverything() throws IOException {
        do {
            flush(true);
        } while (hasPendingMetadata());
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
            if (l2BeforeRefcounts) {
                mapper.l2Cache().writeBack(l2);
                refblockCache.writeBack(refblocks);
                file.flush();
                return;
            }
            try {
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
            } catch (IOException | RuntimeException e) {
                // Nothing of this cut is known durable: the next flush must still extend the file before its entries
                // and apply these frees after them.
                lock.lock();
                try {
                    linkedEnd = Math.max(linkedEnd, dataEnd);
                    for (DeferredFrees.Run r : toFree) {
                        frees.add(r);
                    }
                } finally {
                    lock.unlock();
                }
                throw e;
            }
            if (!toFree.isEmpty()) {
                file.event(StorageEvent.CLUSTER_FREE);
                drain.lock();
                lock.lock();
                try {
                    FreedRuns released;
                    try {
                        released = dereference(toFree);
                    } finally {
                        drain.unlock();
                    }
                    // Requests go on meanwhile: none reaches these clusters through an entry looked up before their
                    // removal (the drain above), and none is handed one before the host has discarded it, as every
                    // allocation holds the metadata lock.
                    released.discardIn(file, mapper.geometry().clusterBits());
                } finally {
                    lock.unlock();
                }
            }
        } finally {
            flushLock.unlock();
        }
    }

    /**
     * Drops the refcounts the runs hold; returns the clusters of releasing runs that reached 0. A cluster that drops
     * to 0 also stops the compressed packing there (the RefcountTable tells the CompressedAllocator). Called holding
     * the drain and the metadata lock.
     */
    private FreedRuns dereference(List<DeferredFrees.Run> runs) throws IOException {
        FreedRuns released = new FreedRuns();
        for (DeferredFrees.Run r : runs) {
            for (long i = 0; i < r.count(); i++) {
                HostCluster cluster = r.first().plus(i);
                if (r.release()) {
                    released.dereference(refcounts, cluster);
                } else {
                    refcounts.update(cluster, -1);
                }
            }
        }
        return released;
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
