package io.github.qcowloom.image;

import io.github.qcowloom.alloc.ClusterPool;
import io.github.qcowloom.alloc.ClusterSource;
import io.github.qcowloom.alloc.FreedRuns;
import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.HostOffset;
import io.github.qcowloom.alloc.NewCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.Ticker;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The supply of host clusters: the cluster pool, a batch's reserved clusters and direct allocations for data, clusters
 * for metadata tables written at once, and frees made safe by their caller; with the dirty bit the allocations need.
 *
 * <p>Locks: {@link #lock} is the image's metadata lock (QEMU's s->lock, shared with {@link MetadataWriter},
 * {@link TableAllocator} and {@link FlushOrder}); it guards the refcounts and the changes of {@link #unreferenced}
 * that go with a refcount change. The order is a flush's: flush lock, image lock, metadata lock, then
 * {@link HeaderBits}' lock, innermost; this class takes only the metadata lock, and HeaderBits' lock (through its
 * markDirty) before it or under it. The cluster pool's lock is outside this order: its allocator thread calls
 * {@link #allocate}, {@link #release} and {@link #idle} holding none of the pool's locks, and
 * {@link ClusterPool#take}, which requests call holding the image lock shared (and their guest cluster's lock, which
 * the allocator thread never takes), only signals under it, never waiting for ours.
 *
 * <p>The dirty bit and the allocations it covers (the pool's and a batch's clusters, and with lazy refcounts every
 * refcount): the bit is set (or found set) in the same hold of the metadata lock as the allocation, and cleared only by
 * {@link FlushOrder#flushUntilClean}, which decides and writes the clean holding all three locks, so that no allocation
 * can slip between its check and the clean.
 *
 * <p>The image's whole lock order, cluster locks included, is stated once in {@link MetadataWriter}.
 */
final class ClusterSupply implements ClusterSource {
    /** What the pool's idleness sets off: the flush that may clear the dirty bit. */
    @FunctionalInterface
    interface IdleFlush {
        void run() throws IOException;
    }

    private final ReentrantLock lock;
    /** Set by {@link #close}: clusters given back from then on are discarded in the host file. */
    private volatile boolean closing;
    /** Refuses to zero freed clusters that hold metadata (refcounts that are wrong). */
    private final OverlapCheck overlap;
    private final Storage file;
    private final ImageGeometry geometry;
    private final RefcountTable refcounts;
    private final HeaderBits headerBits;
    /**
     * Lazy refcounts (compatible bit 0): refcount blocks are written only at close or when idle, so nothing waits
     * for them; the image is marked dirty before the first allocation, and a crash is repaired on the next open.
     */
    private final boolean lazyRefcounts;
    /** The lowest offset the pool has preallocated on the host (Long.MAX_VALUE: none), for {@link #close}. */
    private final AtomicLong preallocatedFrom = new AtomicLong(Long.MAX_VALUE);
    /** Clusters a batch reserved; taken before the pool. */
    private final ConcurrentLinkedQueue<NewCluster> reserved = new ConcurrentLinkedQueue<>();
    /**
     * Clusters allocated (refcount 1) that nothing references and no request holds: those in the pool, reserved for
     * a batch, or on their way between the allocator and either (a refill not yet queued, a trim not yet given back).
     * Each is a leak on a crash, so the image stays dirty while any exists. It rises and falls under {@link #lock}
     * with the refcount change, except when a request takes one: that request then holds the image lock shared until
     * it has linked the cluster, which {@link FlushOrder#flushUntilClean} waits out.
     */
    private final AtomicLong unreferenced = new AtomicLong();
    /** Null when the pool is off (or the image is v2, which has no dirty bit). */
    private volatile ClusterPool pool;
    /** Set with {@link #pool}, before it: what {@link #idle} runs. */
    private volatile IdleFlush onIdle;
    /** Set with {@link #pool}, before it: what {@link #corrupted} runs (the image's qcow2_signal_corruption). */
    private volatile Corruption onCorruption;

    /** What corrupt metadata found by the pool's thread sets off: the image marks itself corrupt. */
    @FunctionalInterface
    interface Corruption {
        void signal(MetadataCorruptionException e) throws IOException;
    }

    ClusterSupply(Storage file, ImageGeometry geometry, RefcountTable refcounts, ReentrantLock lock,
            HeaderBits headerBits, boolean lazyRefcounts, OverlapCheck overlap) {
        this.file = file;
        this.overlap = overlap;
        this.geometry = geometry;
        this.refcounts = refcounts;
        this.lock = lock;
        this.headerBits = headerBits;
        this.lazyRefcounts = lazyRefcounts;
    }

    /**
     * {@code n} new clusters, allocated now, each fresh if it lies past the end the file had before the allocation
     * (which may write a new refblock past them: they are still unwritten); called under the lock.
     */
    private List<NewCluster> allocateRun(int n) throws IOException {
        long fileEnd = file.size();
        long first = refcounts.allocate(n).bytes();
        List<NewCluster> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            long host = first + ((long) i << geometry.clusterBits());
            out.add(new NewCluster(new HostOffset(host), host >= fileEnd));
        }
        return out;
    }

    /**
     * Starts a cluster pool fed by this supply; the image must support the dirty bit (v3). When the pool has been
     * idle, it runs {@code onIdle}.
     */
    void startPool(int low, int high, int max, Ticker ticker, IdleFlush onIdle, Corruption onCorruption) {
        this.onIdle = onIdle;
        this.onCorruption = onCorruption;
        pool = new ClusterPool(this, low, high, max, ticker);
    }

    ClusterPool pool() {
        return pool;
    }

    /**
     * Allocated clusters that nothing references and no request holds (pooled, reserved, or on their way); read by
     * the clean, which holds the metadata lock and the image lock exclusive, so that the count cannot change.
     */
    long unreferenced() {
        return unreferenced.get();
    }

    @Override
    public List<NewCluster> allocate(int n) throws IOException {
        // The pool's clusters leak if the process dies: the dirty bit reaches the disk before their refcounts. Set
        // here, outside the lock, so that requests need not wait for its sync...
        headerBits.markDirty();
        file.event(StorageEvent.CLUSTER_ALLOC);
        List<NewCluster> out;
        lock.lock();
        try {
            // ...and checked in the same hold of the lock as the allocation (no flush copies a refcount block
            // without it): a no-op, unless a flushUntilClean cleared the bit meanwhile; then it is written again.
            headerBits.markDirty();
            out = allocateRun(n);
            unreferenced.addAndGet(n);
        } finally {
            lock.unlock();
        }
        if (n == 0) {
            return out;
        }
        long from = out.get(0).at().bytes();
        long length = (long) n << geometry.clusterBits();
        if (out.get(n - 1).fresh()) { // reaches past the end of the file: what no write used is released at close
            preallocatedFrom.accumulateAndGet(from, Math::min);
        }
        if (!out.get(0).fresh() && zeroedForReuse(from, length)) {
            out = out.stream().map(c -> new NewCluster(c.at(), true)).toList();
        }
        // Allocated on the host before a request takes one, so that its data write is neither the file's growth
        // nor the filling of a hole: with O_DIRECT through io_uring, both block.
        file.preallocate(from, length);
        return out;
    }

    /**
     * Makes freed clusters handed out again read as zeroes where the host can do that cheaply (a hole punched), in
     * bulk before a request takes one (on the pool's thread, or in a batch's reservation), so that a write into one
     * need not write the zeroes around its data, as a write into a cluster past the end of the file need not. QEMU
     * zeroes each such cluster as it writes into it (handle_alloc_space, fallocate ZERO_RANGE), and checks first, as
     * this does, that no metadata lies there: refcounts that call a live table free must not get it zeroed. False
     * where the host cannot: the clusters are handed out as they are, and a partial write into one writes the
     * zeroes around its data.
     */
    private boolean zeroedForReuse(long from, long length) throws IOException {
        overlap.check(from, length, "zeroing of freed clusters for reuse");
        try {
            return file.discard(from, length);
        } catch (IOException e) {
            return false;
        }
    }

    @Override
    public void release(List<NewCluster> clusters) throws IOException {
        // Never referenced, so the refcount may drop at once: on disk it is at worst a leak.
        int bits = geometry.clusterBits();
        lock.lock();
        try {
            // Never written: at close, what the refill zeroed and fallocated goes back to the host. (Not while the
            // image is open: the pool gives clusters back as it settles and soon takes them again.)
            FreedRuns freed = closing ? new FreedRuns() : null;
            for (NewCluster c : clusters) {
                if (freed != null) {
                    freed.dereference(refcounts, c.at().cluster(bits));
                } else {
                    refcounts.update(c.at().cluster(bits), -1);
                }
            }
            unreferenced.addAndGet(-clusters.size());
            if (freed != null) {
                freed.discardIn(file, bits);
            }
        } finally {
            lock.unlock();
        }
    }

    /** True while a batch's reserved clusters wait for its writes, which then take them one by one. */
    boolean hasReserved() {
        return !reserved.isEmpty();
    }

    /** Reserves clusters for a batch of writes, in one refcount update (marking the image dirty first). */
    void reserve(int n) throws IOException {
        reserved.addAll(allocate(n));
    }

    @Override
    public void idle() throws IOException {
        onIdle.run();
    }

    @Override
    public void corrupted(MetadataCorruptionException e) throws IOException {
        onCorruption.signal(e);
    }

    /** Stops the pool without writing anything: the image was found corrupt, its metadata is not to be trusted. */
    void abandon() throws IOException {
        ClusterPool p = pool;
        if (p != null) {
            p.close();
        }
    }

    /**
     * Stops the pool (giving its clusters back) and gives back the reserved clusters no write took; the caller
     * flushes next.
     */
    void close() throws IOException {
        closing = true;
        ClusterPool p = pool;
        if (p != null) {
            p.close();
        }
        // Reserved clusters no write took are given back, as the pool's are.
        List<NewCluster> left = new ArrayList<>();
        for (NewCluster c = reserved.poll(); c != null; c = reserved.poll()) {
            left.add(c);
        }
        if (!left.isEmpty()) {
            release(left);
        }
        releaseFreeTail();
    }

    /**
     * Once the pool has given its clusters back: the free clusters at the end of the file that it had preallocated
     * release their host blocks (a hole to the end; the file keeps its length, as after QEMU's discards), so that
     * an image closed by an O_DIRECT writer does not keep the pool's unused clusters allocated on the host.
     */
    private void releaseFreeTail() throws IOException {
        long from = preallocatedFrom.get();
        if (from == Long.MAX_VALUE) {
            return;
        }
        long size = file.size();
        int bits = geometry.clusterBits();
        long end = (size + geometry.clusterSize() - 1) >>> bits; // in clusters: a partial last one counts
        lock.lock();
        try {
            while (end > from >>> bits && refcounts.get(new HostCluster(end - 1)) == 0) {
                end--;
            }
        } finally {
            lock.unlock();
        }
        if (end << bits < size) {
            file.punchHole(end << bits, size - (end << bits));
        }
    }

    /** A host cluster for data (refcount 1, from the pool when it has one). */
    NewCluster allocateDataCluster() throws IOException {
        // A reserved or pooled cluster becomes the caller's, which links it before it lets go of the image lock.
        NewCluster r = reserved.poll();
        if (r != null) {
            unreferenced.decrementAndGet();
            return r;
        }
        ClusterPool p = pool;
        if (p != null) {
            Optional<NewCluster> c = p.take();
            if (c.isPresent()) {
                unreferenced.decrementAndGet();
                return c.get();
            }
        }
        return allocateDataRun(1).get(0);
    }

    /**
     * {@code n} contiguous host clusters for data (refcount 1 each), allocated at once, not from the pool: a write
     * of several whole clusters then makes one host write, as QEMU's handle_alloc does.
     */
    List<NewCluster> allocateDataRun(int n) throws IOException {
        if (lazyRefcounts) {
            // The refcount stays in the cache: the dirty bit, durable first, stands in for it (set twice, see
            // allocate).
            headerBits.markDirty();
        }
        file.event(StorageEvent.CLUSTER_ALLOC);
        lock.lock();
        try {
            if (lazyRefcounts) {
                headerBits.markDirty();
            }
            return allocateRun(n);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Allocates clusters for {@code bytes} of metadata (a table that is written at once), raising their refcounts in
     * the cache; returns the first one's offset, or 0 for no bytes.
     */
    long allocateMetadata(long bytes) throws IOException {
        if (bytes == 0) {
            return 0;
        }
        long clusters = (bytes + geometry.clusterSize() - 1) >>> geometry.clusterBits();
        if (clusters > Integer.MAX_VALUE) {
            throw new ImageTooLargeException("Cannot allocate " + bytes + " bytes of metadata");
        }
        file.event(StorageEvent.CLUSTER_ALLOC);
        lock.lock();
        try {
            return refcounts.allocate((int) clusters).bytes();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Lowers the refcounts of the clusters {@code [offset, offset + bytes)} touches, now. The caller has made the
     * removal of the last reference durable already (a synced header or table write), so they may be reused at
     * once. Those that reach 0 are discarded in the host file before the lock is let go (the snapshot tables this
     * frees, QEMU frees with QCOW2_DISCARD_SNAPSHOT, which it passes to the host by default).
     */
    void freeNow(long offset, long bytes) throws IOException {
        if (bytes == 0) {
            return;
        }
        file.event(StorageEvent.CLUSTER_FREE);
        int bits = geometry.clusterBits();
        lock.lock();
        try {
            FreedRuns freed = new FreedRuns();
            for (long c = offset >>> bits; c <= (offset + bytes - 1) >>> bits; c++) {
                freed.dereference(refcounts, new HostCluster(c));
            }
            freed.discardIn(file, bits);
        } finally {
            lock.unlock();
        }
    }
}
