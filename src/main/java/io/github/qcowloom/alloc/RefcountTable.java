package io.github.qcowloom.alloc;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.RefcountOverflowException;
import io.github.qcowloom.cache.Slice;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.RefcountCodec;
import io.github.qcowloom.format.ReftableEntry;
import io.github.qcowloom.storage.RangesToFlush;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.function.LongConsumer;

/**
 * The refcounts of host clusters: the reftable in memory, refcount blocks through a {@link TableCache}. Every
 * method is called with the image's metadata lock held (QEMU's s->lock), but {@link #extent} and {@link
 * #isRefblock}, which the overlap check reads without it (published state: a volatile record, a concurrent set);
 * none of them syncs except where a new refcount block or a larger reftable must reach the disk before the entry
 * that points to it.
 */
public final class RefcountTable {

    private final Storage file;
    private final TableCache cache;
    private final RefcountCodec codec;
    private final int clusterBits;
    private final long clusterSize;
    private final int sliceSize;
    /** log2 of the refcount entries in one refblock. */
    private final int blockBits;
    /** log2 of the refcount entries in one cache slice. */
    private final int sliceEntryBits;

    private long[] table;
    /** Clusters that hold refcount blocks: the reftable's entries as a set, read without the metadata lock. */
    private final java.util.Set<Long> refblockClusters = java.util.concurrent.ConcurrentHashMap.newKeySet();
    /**
     * Where the reftable lies, published whole: the overlap check reads it without the metadata lock (a table
     * write-back's check runs outside it), and an old offset with a new, larger size would cover other tables.
     */
    private volatile Extent extent;

    /** The reftable's offset and length in clusters. */
    public record Extent(long offset, int clusters) {
    }
    /** QEMU's free_cluster_index: no cluster below it is known to be free, except those freed since. */
    private long freeHint;
    /**
     * Told of every cluster whose refcount {@link #update} drops to 0, whoever lowered it (a deferred free, a
     * snapshot's table edit, a pool giving clusters back, the old reftable after growth): state that assumes a
     * cluster stays in use, like the compressed allocator's packing position, is dropped there, so no caller can
     * forget to say so. Called under the metadata lock, like every method here; must not call back.
     */
    private LongConsumer freedListener = cluster -> { };
    private boolean freedListenerSet;

    /**
     * A cache of refblock slices for the tools that read or edit the refcounts of an image no driver has open
     * (check, repair, amend, the crash kit): slices of a cluster, 4 KiB at most, {@code slices} of them.
     */
    public static TableCache offlineCache(Storage file, Header header, int slices) {
        return new TableCache(file, (int) Math.min(header.clusterSize(), 4096), slices);
    }

    public RefcountTable(Storage file, Header header, TableCache refblockCache) throws IOException {
        this.file = file;
        this.cache = refblockCache;
        this.codec = new RefcountCodec(header.refcountOrder());
        this.clusterBits = header.clusterBits();
        this.clusterSize = header.clusterSize();
        this.sliceSize = refblockCache.sliceSize();
        if (sliceSize > clusterSize || sliceSize < 512) {
            throw new IllegalArgumentException("slice size " + sliceSize + " for clusters of " + clusterSize);
        }
        this.blockBits = clusterBits + 3 - header.refcountOrder();
        this.sliceEntryBits = Integer.numberOfTrailingZeros(sliceSize) + 3 - header.refcountOrder();
        // Header.parse has checked the size against QEMU's 8 MiB limit and, but for a check, that the table lies in
        // the file (past its end it reads as zeroes).
        this.extent = new Extent(header.refcountTableOffset(), header.refcountTableClusters());
        byte[] raw = new byte[(int) (extent.clusters() * clusterSize)];
        file.readFully(ByteBuffer.wrap(raw), extent.offset());
        this.table = new long[raw.length / 8];
        for (int i = 0; i < table.length; i++) {
            table[i] = Bytes.getLong(raw, i * 8);
            long block = ReftableEntry.refblockOffset(table[i]);
            if (block != 0) {
                refblockClusters.add(block >>> clusterBits);
            }
        }
        this.freeHint = 0;
    }

    /**
     * Installs the one listener told of every cluster whose refcount drops to 0 (see {@link #freedListener}).
     *
     * @throws IllegalStateException if one is installed already
     */
    public void onFreed(LongConsumer listener) {
        if (freedListenerSet) {
            throw new IllegalStateException("a freed-cluster listener is installed already");
        }
        freedListenerSet = true;
        freedListener = listener;
    }

    /** The largest refcount an entry can hold (2^refcount_bits - 1). */
    public long maxRefcount() {
        return codec.max();
    }

    /** True if a refcount block for host cluster {@code cluster} exists already (counting it needs no new block). */
    public boolean hasBlockFor(long cluster) throws IOException {
        long index = cluster >>> blockBits;
        return index < table.length && blockOffset((int) index) != 0;
    }

    /**
     * The first cluster at or after {@code cluster} whose reftable entry is not 0 (a refblock, or a broken entry
     * that {@link #get} reports), or {@link Long#MAX_VALUE}: every cluster skipped has refcount 0.
     */
    public long nextCovered(long cluster) {
        checkCluster(cluster);
        for (long index = cluster >>> blockBits; index < table.length; index++) {
            if (table[(int) index] != 0) {
                return Math.max(cluster, index << blockBits);
            }
        }
        return Long.MAX_VALUE;
    }

    /**
     * How many host clusters below {@code end} have a refcount, counted up to {@code limit} (QEMU's loop in
     * qcow2_detect_metadata_preallocation); ranges no reftable entry covers are skipped unread.
     */
    public long countReferenced(long end, long limit) throws IOException {
        long count = 0;
        for (long cluster = nextCovered(0); cluster < end && count < limit; cluster = nextCovered(cluster + 1)) {
            if (refcount(cluster) != 0) {
                count++;
            }
        }
        return count;
    }

    /** Refcount of host cluster {@code host} (0 beyond what the reftable covers). */
    public long get(HostCluster host) throws IOException {
        return refcount(host.index());
    }

    private long refcount(long cluster) throws IOException {
        checkCluster(cluster);
        long index = cluster >>> blockBits;
        if (index >= table.length) {
            return 0;
        }
        long block = blockOffset((int) index);
        if (block == 0) {
            return 0;
        }
        int inBlock = (int) (cluster & ((1L << blockBits) - 1));
        Slice slice = cache.get(block + (long) (inBlock >>> sliceEntryBits) * sliceSize);
        return codec.get(slice.data(), inBlock & ((1 << sliceEntryBits) - 1));
    }

    /**
     * Adds {@code delta} to the refcount of host cluster {@code host} in the cache (the refblock slice becomes dirty)
     * and returns the new refcount.
     *
     * @throws CorruptImageException on underflow below 0 (a reference to a free cluster)
     * @throws RefcountOverflowException on overflow past the refcount width (the count is left unchanged)
     */
    public long update(HostCluster host, long delta) throws IOException {
        return add(host.index(), delta);
    }

    private long add(long cluster, long delta) throws IOException {
        checkCluster(cluster);
        long index = cluster >>> blockBits;
        if (delta < 0 && (index >= table.length || blockOffset((int) index) == 0)) {
            // No refblock counts it: its refcount is 0, and a decrement is refused before a refblock (and the file
            // up to the cluster, past 1 TiB for a corrupt pointer) is made to count it.
            throw underflow(cluster, 0, delta);
        }
        long block = ensureBlock(index, cluster);
        int inBlock = (int) (cluster & ((1L << blockBits) - 1));
        // Pinned from the lookup to the change, so that no lookup on another thread can evict the slice in between
        // (the image's refblock lookups all hold the metadata lock today, but the cache does not rely on that).
        Slice slice = cache.pin(block + (long) (inBlock >>> sliceEntryBits) * sliceSize);
        try {
            return change(slice, inBlock & ((1 << sliceEntryBits) - 1), cluster, delta);
        } finally {
            cache.unpin(slice);
        }
    }

    private static CorruptImageException underflow(long cluster, long old, long delta) {
        return new CorruptImageException("Refcount of cluster " + cluster + " would drop below 0 ("
                + Long.toUnsignedString(old) + " " + delta + ")");
    }

    /**
     * {@link #update} in entry {@code i} of {@code slice}, the pinned refblock slice that counts {@code cluster};
     * returns the new refcount.
     */
    private long change(Slice slice, int i, long cluster, long delta) throws IOException {
        long old = codec.get(slice.data(), i);
        long next = old + delta;
        if (delta < 0) {
            if (Long.compareUnsigned(old, -delta) < 0) {
                throw underflow(cluster, old, delta);
            }
        } else if (Long.compareUnsigned(next, old) < 0 || Long.compareUnsigned(next, codec.max()) > 0) {
            throw new RefcountOverflowException(cluster, codec.bits(), "Refcount of cluster " + cluster
                    + " would exceed " + codec.bits() + " bits (" + Long.toUnsignedString(old) + " + " + delta + ")");
        }
        if (delta == 0) {
            return old;
        }
        codec.set(slice.data(), i, next);
        slice.markDirty();
        if (next == 0) {
            if (cluster < freeHint) {
                freeHint = cluster;
            }
            freedListener.accept(cluster);
        }
        return next;
    }

    /**
     * Allocates {@code n} contiguous clusters whose refcount is 0, sets each to 1 (in the cache, dirty) and
     * returns the first one's offset.
     */
    public HostOffset allocate(int n) throws IOException {
        if (n < 1) {
            throw new IllegalArgumentException("allocate " + n + " clusters");
        }
        while (true) {
            long start = findFree(Math.max(freeHint, 1), n);
            long lastIndex = (start + n - 1) >>> blockBits;
            if (lastIndex >= table.length) {
                // Growing the table takes clusters (perhaps inside the run): search again afterwards.
                growTable(lastIndex);
                continue;
            }
            if (!createMissingBlocks(start, n)) {
                continue;
            }
            for (long c = start; c < start + n; c++) {
                add(c, 1);
            }
            freeHint = start + n;
            return new HostOffset(start << clusterBits);
        }
    }

    /**
     * Creates every missing refblock that counts the free run [start, start + n), placing the new blocks together
     * in free clusters just past the run, as QEMU's alloc_refcount_block places them at the free-cluster index.
     * Placing each block at the head of its own range instead would cap free runs at one block's span, and a
     * longer run would never fit. Returns false if the reftable had to grow first (the caller searches again).
     */
    private boolean createMissingBlocks(long start, int n) throws IOException {
        java.util.TreeSet<Long> missing = new java.util.TreeSet<>();
        for (long index = start >>> blockBits; index <= (start + n - 1) >>> blockBits; index++) {
            if (blockOffset((int) index) == 0) {
                missing.add(index);
            }
        }
        if (missing.isEmpty()) {
            return true;
        }
        long at;
        while (true) {
            at = findFree(start + n, missing.size());
            long last = (at + missing.size() - 1) >>> blockBits;
            if (last >= table.length) {
                growTable(last);
                return false;
            }
            // The new blocks' own clusters must be counted too, perhaps by further new blocks.
            boolean added = false;
            for (long index = at >>> blockBits; index <= last; index++) {
                if (blockOffset((int) index) == 0 && missing.add(index)) {
                    added = true;
                }
            }
            if (!added) {
                break;
            }
        }
        file.event(StorageEvent.REFBLOCK_ALLOC);
        java.util.Map<Long, Slice[]> created = new java.util.HashMap<>();
        java.util.List<Long> indices = new java.util.ArrayList<>(missing);
        for (int i = 0; i < indices.size(); i++) {
            created.put(indices.get(i), createBlockSlices((at + i) << clusterBits));
        }
        for (int i = 0; i < indices.size(); i++) {
            long cluster = at + i;
            long owner = cluster >>> blockBits;
            Slice[] slices = created.get(owner);
            if (slices != null) {
                setInSlices(slices, (int) (cluster - (owner << blockBits)), 1);
            } else {
                add(cluster, 1);
            }
        }
        for (Slice[] slices : created.values()) {
            for (Slice sl : slices) {
                cache.writeNow(sl);
            }
        }
        // Existing blocks that now count a new block's cluster go to disk with the new blocks.
        RangesToFlush written = cache.writeBackRanges(cache.copyDirty());
        for (int i = 0; i < indices.size(); i++) {
            written.add((at + i) << clusterBits, clusterSize);
        }
        // The new refblocks, and the refcounts of their own clusters, must be on disk before the reftable entries
        // that point to them (QEMU alloc_refcount_block): a crash must not find an entry pointing at garbage.
        written.flush(file);
        RangesToFlush entries = new RangesToFlush();
        for (int i = 0; i < indices.size(); i++) {
            byte[] entry = new byte[8];
            Bytes.putLong(entry, 0, (at + i) << clusterBits);
            long entryOffset = extent.offset() + indices.get(i) * 8;
            file.write(ByteBuffer.wrap(entry), entryOffset);
            entries.add(entryOffset, 8);
        }
        // The entries are made durable at once: refcount writes into these blocks rely on them being reachable.
        entries.flush(file);
        for (int i = 0; i < indices.size(); i++) {
            setEntry((int) (long) indices.get(i), (at + i) << clusterBits);
        }
        return true;
    }

    /** Host offset of the reftable and its size in clusters (they change when it grows). */
    public long tableOffset() {
        return extent.offset();
    }

    public int tableClusters() {
        return extent.clusters();
    }

    /** Offset and clusters read together, for a reader without the metadata lock. */
    public Extent extent() {
        return extent;
    }

    /** True if host cluster {@code cluster} holds a refcount block (for overlap checks before writes). */
    public boolean isRefblock(long cluster) {
        return refblockClusters.contains(cluster);
    }

    /** Records reftable entry {@code index} = {@code offset} in memory and in the set of refblock clusters. */
    private void setEntry(int index, long offset) {
        table[index] = offset;
        refblockClusters.add(offset >>> clusterBits);
    }

    /** First cluster at or after {@code from} that begins {@code n} clusters of refcount 0. */
    private long findFree(long from, int n) throws IOException {
        long runStart = from;
        long c = from;
        while (c - runStart < n) {
            if (refcount(c) != 0) {
                runStart = c + 1;
            }
            c++;
        }
        return runStart;
    }

    private static void checkCluster(long cluster) {
        if (cluster < 0) {
            throw new IllegalArgumentException("cluster " + cluster);
        }
    }

    /**
     * The refblock offset in reftable entry {@code index}, 0 if none. A misaligned offset, or one past the host
     * offsets an image can use (bit 63 set reads as negative), is corruption found during I/O: QEMU's
     * qcow2_get_refcount signals it ("Refblock offset ... unaligned"), and so do we, before the offset reaches
     * the file.
     */
    private long blockOffset(int index) throws MetadataCorruptionException {
        long offset = ReftableEntry.refblockOffset(table[index]);
        if ((offset & (clusterSize - 1)) != 0) {
            throw new MetadataCorruptionException(String.format(
                    "Refblock offset %#x unaligned (reftable index: %#x)", offset, index));
        }
        if (offset < 0 || offset > Limits.MAX_HOST_OFFSET - clusterSize) {
            throw new MetadataCorruptionException(String.format(
                    "Refblock offset %#x invalid (reftable index: %#x): past the largest host offset %#x",
                    offset, index, Limits.MAX_HOST_OFFSET));
        }
        return offset;
    }

    /**
     * Returns the refblock of reftable entry {@code index}, creating it (and growing the reftable) when missing,
     * as QEMU's alloc_refcount_block does. The new block goes into the range it covers (self-describing), at its
     * first cluster other than cluster 0 and {@code avoid} (the cluster the caller is about to count). Every
     * cluster in that range is free, since nothing counts it yet, so it can always describe itself and no
     * recursion into another block is needed.
     */
    private long ensureBlock(long index, long avoid) throws IOException {
        if (index >= table.length) {
            growTable(index);
        }
        long existing = blockOffset((int) index);
        if (existing != 0) {
            return existing;
        }
        file.event(StorageEvent.REFBLOCK_ALLOC);
        long first = index << blockBits;
        long cluster = Math.max(first, 1);
        if (cluster == avoid) {
            cluster++;
        }
        long offset = cluster << clusterBits;
        Slice[] slices = createBlockSlices(offset);
        setInSlices(slices, (int) (cluster - first), 1);
        for (Slice s : slices) {
            cache.writeNow(s);
        }
        // The new refblock (with its own refcount) must be on disk before the reftable entry that points to it:
        // otherwise a crash could leave the entry pointing at garbage (QEMU alloc_refcount_block).
        file.flushRange(offset, clusterSize);
        byte[] entry = new byte[8];
        Bytes.putLong(entry, 0, offset);
        // The reftable entry is made durable at once (QEMU's bdrv_pwrite_sync): later refcount writes into this
        // block, and the entries that point to clusters it counts, rely on the block being reachable.
        file.writeDurably(ByteBuffer.wrap(entry), extent.offset() + index * 8);
        setEntry((int) index, offset);
        return offset;
    }

    /** Zeroed, dirty cache slices for a whole new refblock at {@code offset}. */
    private Slice[] createBlockSlices(long offset) {
        Slice[] slices = new Slice[(int) (clusterSize / sliceSize)];
        for (int i = 0; i < slices.length; i++) {
            slices[i] = cache.create(offset + (long) i * sliceSize);
        }
        return slices;
    }

    private void setInSlices(Slice[] slices, int inBlock, long value) {
        Slice s = slices[inBlock >>> sliceEntryBits];
        codec.set(s.data(), inBlock & ((1 << sliceEntryBits) - 1), value);
        s.markDirty();
    }

    /**
     * Replaces the reftable by a larger one that has an entry {@code neededIndex}, in the spirit of QEMU's
     * qcow2_refcount_area: new refblocks and the new table are placed in an area that starts at the first
     * refblock boundary past both the old table's coverage and block {@code neededIndex}, so that nothing there
     * is in use, and the new refblocks count exactly that area.
     */
    private void growTable(long neededIndex) throws IOException {
        file.event(StorageEvent.REFTABLE_GROW);
        long perBlock = 1L << blockBits;
        long entriesPerCluster = clusterSize / 8;
        long maxEntries = Limits.MAX_REFTABLE_BYTES / 8;
        long firstBlock = Math.max(table.length, neededIndex + 1);
        long wanted = Math.max(2L * table.length, neededIndex + 1 + (neededIndex + 1) / 2);
        long blocks = 1;
        long clusters;
        while (true) {
            long entries = Math.max(wanted, firstBlock + blocks);
            if (entries > maxEntries) {
                entries = Math.max(maxEntries, firstBlock + blocks);
            }
            clusters = (entries + entriesPerCluster - 1) / entriesPerCluster;
            long needBlocks = (blocks + clusters + perBlock - 1) / perBlock;
            if (needBlocks <= blocks && clusters * entriesPerCluster >= firstBlock + blocks) {
                break;
            }
            blocks = Math.max(blocks, needBlocks);
        }
        if (clusters * clusterSize > Limits.MAX_REFTABLE_BYTES) {
            throw new ImageTooLargeException("Reference count table would exceed " + Limits.MAX_REFTABLE_BYTES
                    + " bytes (needs entry " + neededIndex + ")");
        }
        long areaStart = firstBlock << blockBits;
        long newTableCluster = areaStart + blocks;
        long newOffset = newTableCluster << clusterBits;

        // The area's refblocks, each counting the area's clusters in its range.
        long areaEnd = newTableCluster + clusters;
        long[] newTable = new long[(int) (clusters * entriesPerCluster)];
        System.arraycopy(table, 0, newTable, 0, table.length);
        for (long b = 0; b < blocks; b++) {
            long blockCluster = areaStart + b;
            long blockOffset = blockCluster << clusterBits;
            Slice[] slices = createBlockSlices(blockOffset);
            long rangeStart = (firstBlock + b) << blockBits;
            long rangeEnd = Math.min(rangeStart + perBlock, areaEnd);
            for (long c = rangeStart; c < rangeEnd; c++) {
                setInSlices(slices, (int) (c - rangeStart), 1);
            }
            for (Slice s : slices) {
                cache.writeNow(s);
            }
            newTable[(int) (firstBlock + b)] = blockOffset;
        }
        byte[] raw = new byte[(int) (clusters * clusterSize)];
        for (int i = 0; i < newTable.length; i++) {
            Bytes.putLong(raw, i * 8, newTable[i]);
        }
        file.write(ByteBuffer.wrap(raw), newOffset);
        // The new refblocks and table must be durable before the header points to them: a crash after the
        // header write must find a complete table (QEMU qcow2_refcount_area: write the area, then the header).
        file.flush();
        HeaderField pointer = HeaderField.REFCOUNT_TABLE_OFFSET;
        file.write(pointer.encode(newOffset, clusters), pointer.offset());
        // The header switch must be durable before the old table's clusters are freed: once freed they may be
        // reused and overwritten, and a crash must not find a header that still points to them.
        file.flush();
        long oldCluster = extent.offset() >>> clusterBits;
        int oldClusters = extent.clusters();
        table = newTable;
        for (long entry : newTable) {
            long block = ReftableEntry.refblockOffset(entry);
            if (block != 0) {
                refblockClusters.add(block >>> clusterBits);
            }
        }
        extent = new Extent(newOffset, (int) clusters);
        // Zeroes over the old table before its clusters are freed: nothing points to it any more (the switch is
        // durable), and a cluster handed out again then holds no old entries, whoever takes it for what (a resize's
        // preallocation takes clusters in the space it reserved as reading zeroes).
        file.writeZeroes(oldCluster << clusterBits, (long) oldClusters << clusterBits);
        for (long c = oldCluster; c < oldCluster + oldClusters; c++) {
            add(c, -1);
        }
    }
}
