package io.github.qcowloom.alloc;

import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.RefcountOverflowException;
import io.github.qcowloom.cache.Slice;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import java.io.IOException;

/**
 * QEMU's qcow2_update_snapshot_refcount, split in its two uses: {@link #add} changes the refcount of every cluster
 * one L1 table reaches (its L2 tables, their data clusters, compressed clusters by byte range), and
 * {@link #markCopied} recomputes the COPIED flags of a tree from the refcounts (QEMU's addend-0 pass). L2 tables
 * are read and changed through the image's L2 cache; refcounts change in the refblock cache only. The caller holds
 * the image exclusively and orders the flushes.
 */
public final class TreeRefcounts {
    private final TableCache l2Cache;
    private final RefcountTable refcounts;
    private final int clusterBits;
    private final int entrySize;
    private final boolean extendedL2;
    private final boolean hasDataFile;

    public TreeRefcounts(Header header, TableCache l2Cache, RefcountTable refcounts) {
        this.l2Cache = l2Cache;
        this.refcounts = refcounts;
        this.clusterBits = header.clusterBits();
        this.entrySize = header.l2EntrySize();
        this.extendedL2 = header.extendedL2();
        this.hasDataFile = header.hasDataFile();
    }

    /** Receives each host cluster of a tree, once per reference; false stops the walk. */
    @FunctionalInterface
    private interface ClusterVisitor {
        boolean visit(long cluster) throws IOException;
    }

    /**
     * Adds {@code delta} (+1 or −1) to the refcount of every cluster the tree of {@code l1} reaches, once per
     * reference. An increase that would overflow the refcount width is undone in full before the
     * {@link RefcountOverflowException} is thrown, so the refcounts are as they were. A decrease is only made once
     * nothing on disk points to the tree any more, so a failure part way leaks clusters at worst; the clusters it
     * frees (refcount 0) go to {@code freed}, if not null, to be discarded in the host once the walk has read the
     * tables.
     */
    public void add(long[] l1, int delta, FreedRuns freed) throws IOException {
        if (delta != 1 && delta != -1) {
            throw new IllegalArgumentException("delta " + delta);
        }
        long[] done = {0};
        try {
            walk(l1, cluster -> {
                HostCluster host = new HostCluster(cluster);
                long now = refcounts.update(host, delta);
                done[0]++;
                if (freed != null && now == 0) {
                    freed.add(host);
                }
                return true;
            });
        } catch (RefcountOverflowException e) {
            // The same walk again (nothing in the tree changed), taking back exactly the updates made.
            long[] undone = {0};
            walk(l1, cluster -> {
                if (undone[0] == done[0]) {
                    return false;
                }
                refcounts.update(new HostCluster(cluster), -delta);
                undone[0]++;
                return true;
            });
            throw e;
        }
    }

    /**
     * Sets COPIED on each L2 entry of the tree whose cluster has refcount 1 and clears it everywhere else (QEMU's
     * addend-0 pass); changed slices are left dirty in the L2 cache. Returns {@code l1} with the same rule applied
     * to its entries (the L2 tables' refcounts); the caller writes it.
     */
    public long[] markCopied(long[] l1) throws IOException {
        long[] out = l1.clone();
        for (int i = 0; i < l1.length; i++) {
            long l2Offset = l2Table(l1[i], i);
            if (l2Offset == 0) {
                continue;
            }
            forEachEntry(l2Offset, (slice, at, byteInTable) -> {
                long entry = slice.getLong(at);
                long updated = entry & ~L2Entry.COPIED;
                ClusterType type = L2Entry.type(entry, extendedL2, hasDataFile);
                if (type == ClusterType.NORMAL || type == ClusterType.ZERO_ALLOC) {
                    long cluster = dataCluster(entry, l2Offset, byteInTable);
                    if (cluster != 0 && refcounts.get(new HostCluster(cluster)) == 1) {
                        updated |= L2Entry.COPIED;
                    }
                }
                if (updated != entry) {
                    slice.setLong(at, updated);
                }
                return true;
            });
            out[i] = L1Entry.of(l2Offset, refcounts.get(new HostCluster(l2Offset >>> clusterBits)) == 1);
        }
        return out;
    }

    /**
     * Visits every cluster the tree reaches in a fixed order: each L2 table's data clusters, then the table itself.
     * Returns false if the visitor stopped the walk.
     */
    private boolean walk(long[] l1, ClusterVisitor visitor) throws IOException {
        for (int i = 0; i < l1.length; i++) {
            long l2Offset = l2Table(l1[i], i);
            if (l2Offset == 0) {
                continue;
            }
            if (!forEachEntry(l2Offset, (slice, at, byteInTable) ->
                    visitEntry(slice.getLong(at), l2Offset, byteInTable, visitor))) {
                return false;
            }
            if (!visitor.visit(l2Offset >>> clusterBits)) {
                return false;
            }
        }
        return true;
    }

    /** One L2 entry, at {@code at} in {@code slice} and {@code byteInTable} in its table; false stops the walk. */
    @FunctionalInterface
    private interface EntryVisitor {
        boolean visit(Slice slice, int at, long byteInTable) throws IOException;
    }

    /** Calls {@code visitor} with every entry of the L2 table at {@code l2Offset}, slice by slice, in order. */
    private boolean forEachEntry(long l2Offset, EntryVisitor visitor) throws IOException {
        int sliceSize = l2Cache.sliceSize();
        for (long off = 0; off < 1L << clusterBits; off += sliceSize) {
            Slice slice = l2Cache.get(l2Offset + off);
            for (int at = 0; at < sliceSize; at += entrySize) {
                if (!visitor.visit(slice, at, off + at)) {
                    return false;
                }
            }
        }
        return true;
    }

    private boolean visitEntry(long entry, long l2Offset, long byteInTable, ClusterVisitor visitor)
            throws IOException {
        switch (L2Entry.type(entry, extendedL2, hasDataFile)) {
            case COMPRESSED -> {
                CompressedDescriptor d = CompressedDescriptor.decode(entry, clusterBits);
                for (long c = d.firstHostCluster(clusterBits); c <= d.lastHostCluster(clusterBits); c++) {
                    if (!visitor.visit(c)) {
                        return false;
                    }
                }
            }
            case NORMAL, ZERO_ALLOC -> {
                long cluster = dataCluster(entry, l2Offset, byteInTable);
                // With an external data file the cluster lives in the other file: nothing here counts it.
                if (cluster != 0 && !visitor.visit(cluster)) {
                    return false;
                }
            }
            case UNALLOCATED, ZERO_PLAIN -> {
                // Nothing allocated.
            }
        }
        return true;
    }

    /** The L2 table offset of an L1 entry (0 if none); a misaligned one is corruption (qcow2_signal_corruption). */
    private long l2Table(long l1Entry, int l1Index) throws MetadataCorruptionException {
        return L1Entry.checkedL2Offset(l1Entry, l1Index, 1L << clusterBits);
    }

    /** The host cluster of a NORMAL or ZERO_ALLOC entry; 0 with an external data file. A misaligned one is corruption. */
    private long dataCluster(long entry, long l2Offset, long byteInTable) throws MetadataCorruptionException {
        if (hasDataFile) {
            return 0;
        }
        long offset = L2Entry.hostOffset(entry);
        if ((offset & ((1L << clusterBits) - 1)) != 0) {
            throw new MetadataCorruptionException(String.format(
                    "Cluster allocation offset %#x unaligned (L2 offset: %#x, L2 index: %#x)", offset, l2Offset,
                    byteInTable / entrySize));
        }
        return offset >>> clusterBits;
    }
}
