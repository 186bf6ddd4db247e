package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.RefcountCodec;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashSet;
import java.util.Set;
import java.util.function.DoubleConsumer;

/**
 * qemu-img amend -o refcount_bits=N (QEMU's qcow2_change_refcount_order) on a clean image that is not open: each
 * stored refcount is copied into new refblocks of the new width, listed by a new reftable; then one synced header
 * write switches the width and the reftable together, and the old reftable and refblocks are free (they count 0 in
 * the new ones, as QEMU frees them once it has switched).
 *
 * <p>The new structures are placed where QEMU places them: a refblock for each range of the new width that holds a
 * refcount, taken in the range's order from the first free cluster on, then the reftable in whole clusters, again
 * until the new structures count themselves too (QEMU's alloc_refblock walks). QEMU takes those clusters in the old
 * refcounts first; here the old refcounts are never written, so a crash before the switch leaves the old structures
 * in force and the new ones in clusters that nothing counts or references. Where QEMU's allocation lands in a range
 * the old structures do not count yet, it first gives that range an old refblock of its own, which takes a cluster;
 * there, and past the old reftable's reach, the layouts may differ. The counts are the same.
 *
 * <p>Memory: the stored refcounts are read through a small cache, one refblock is built at a time; what is kept is,
 * per new refblock, a bit, its offset and its cluster in a set, bounded by QEMU's 8 MiB reftable limit (1M
 * refblocks, images of petabytes at 64 KiB clusters).
 */
final class RefcountWidthChange {
    /** Progress is told at every 65 536th cluster walked: the clusters whose index has these bits clear. */
    private static final long PROGRESS_MASK = (1 << 16) - 1;

    private final Storage file;
    private final RefcountTable stored;
    private final int clusterBits;
    private final long clusterSize;
    private final RefcountCodec codec;
    /** Entries of one new refblock. */
    private final long perBlock;
    private final long oldTableStart;
    private final long oldTableEnd;
    /**
     * Clusters the file holds: a stored refcount past them counts a cluster that was never written (a leak at
     * most), and is dropped, so that the walk is bounded by the file, not by what a reftable claims.
     */
    private final long fileClusters;
    /** Clusters taken by the new structures; each counts 1. One per new refblock and reftable cluster. */
    private final Set<Long> taken = new HashSet<>();
    /**
     * The new refblock ranges that hold a refcount: stored ones, and those of every cluster the new structures have
     * taken. A range stays marked once its cluster is given back, which changes nothing: its refblock was taken in
     * the walk that saw the cluster, and QEMU never gives a refblock back.
     */
    private final BitSet counted = new BitSet();
    /** The new reftable: refblock offsets by index, 0 for a range without refcounts; spare room past its length. */
    private long[] reftable = new long[0];
    /** Entries of the new reftable, in whole clusters of entries, as QEMU sizes it. */
    private int reftableLength;
    private long reftableStart;
    private int reftableClusters;
    /** QEMU's free_cluster_index: no cluster below it is free. */
    private long freeHint;

    private RefcountWidthChange(Storage file, Header header, int order) throws IOException {
        this.file = file;
        this.stored = new RefcountTable(file, header, RefcountTable.offlineCache(file, header, 4));
        this.clusterBits = header.clusterBits();
        this.clusterSize = header.clusterSize();
        this.codec = new RefcountCodec(order);
        this.perBlock = codec.entriesPerBlock(clusterSize);
        this.oldTableStart = stored.tableOffset() >>> clusterBits;
        this.oldTableEnd = oldTableStart + stored.tableClusters();
        this.fileClusters = Bytes.alignUp(file.size(), clusterSize) >>> clusterBits;
    }

    /**
     * Gives the image in {@code file} refcounts of {@code bits} bits; {@code progress} is told the fraction done, from
     * 0 to 1, as the walk and the writes go.
     *
     * @throws ImageException in QEMU's words if a cluster's refcount does not fit in the new width, or if the new
     *     reftable would pass QEMU's limit; nothing is changed then
     */
    static void apply(Storage file, int bits, DoubleConsumer progress) throws IOException {
        int order = Integer.numberOfTrailingZeros(bits);
        Header header = HeaderRewrite.readUnopenedHeader(file);
        RefcountWidthChange change = new RefcountWidthChange(file, header, order);
        change.countStored(progress);
        change.place();
        change.write(progress);
        // The new structures are durable before the header names them.
        file.flush();
        HeaderRewrite.rewrite(file, h -> h.withRefcounts(order, change.reftableStart << change.clusterBits,
                change.reftableClusters));
        progress.accept(1);
    }

    /**
     * Marks the new refblock ranges that hold a stored refcount, each refcount checked against the new width on the
     * way, the lowest cluster first, as QEMU's walk meets them.
     */
    private void countStored(DoubleConsumer progress) throws IOException {
        for (long c = stored.nextCovered(0); c < fileClusters; c = stored.nextCovered(c + 1)) {
            if ((c & PROGRESS_MASK) == 0) {
                progress.accept(0.5 * c / fileClusters);
            }
            long refcount = stored.get(new HostCluster(c));
            if (codec.max() != -1 && Long.compareUnsigned(refcount, codec.max()) > 0) {
                long offset = c << clusterBits;
                throw new ImageException("Cannot decrease refcount entry width to " + codec.bits() + " bits: Cluster"
                        + " at offset " + Bytes.cHex(offset) + " has a refcount of " + Long.toUnsignedString(refcount));
            }
            if (refcount != 0) {
                counted.set(range(c));
            }
        }
    }

    private int range(long cluster) {
        return Math.toIntExact(cluster / perBlock);
    }

    /**
     * QEMU's allocation walks: a refblock for every range with a refcount (the new structures' own clusters
     * included), in range order; then, if any was taken, the reftable anew; until a walk takes nothing.
     */
    private void place() throws IOException {
        boolean tookAny;
        do {
            tookAny = false;
            for (int k = counted.nextSetBit(0); k >= 0; k = counted.nextSetBit(k + 1)) {
                if (k >= reftableLength) {
                    long entries = Bytes.alignUp(k + 1, clusterSize / 8);
                    if (entries * 8 > Limits.MAX_REFTABLE_BYTES) {
                        throw new ImageException("This operation would make the refcount table grow beyond the"
                                + " maximum size supported by QEMU, aborting");
                    }
                    reftableLength = (int) entries;
                    if (reftableLength > reftable.length) { // doubled: a cluster of entries at a time is quadratic
                        reftable = Arrays.copyOf(reftable, Math.max(reftableLength, 2 * reftable.length));
                    }
                }
                if (reftable[k] == 0) {
                    reftable[k] = take(1) << clusterBits;
                    tookAny = true;
                }
            }
            if (tookAny) {
                // QEMU frees the reftable it took last time and takes one of the size the walk reached.
                for (long c = reftableStart; c < reftableStart + reftableClusters; c++) {
                    taken.remove(c);
                }
                if (reftableClusters > 0) {
                    freeHint = Math.min(freeHint, reftableStart);
                }
                reftableClusters = (int) (reftableLength * 8L / clusterSize);
                reftableStart = take(reftableClusters);
            }
        } while (tookAny);
    }

    /**
     * The first run of {@code n} free clusters from {@link #freeHint} on, taken (QEMU's alloc_clusters_noref). The
     * old structures are never taken, even where their stored refcount is wrongly 0.
     */
    private long take(int n) throws IOException {
        long start = Math.max(freeHint, 1);
        long c = start;
        while (c - start < n) {
            if (taken.contains(c) || isOldStructure(c) || storedRefcount(c) != 0) {
                start = c + 1;
            }
            c++;
        }
        for (long t = start; t < start + n; t++) {
            taken.add(t);
            counted.set(range(t));
        }
        freeHint = start + n;
        return start;
    }

    /** Writes the new refblocks and the new reftable (not synced). */
    private void write(DoubleConsumer progress) throws IOException {
        byte[] block = new byte[(int) clusterSize];
        long refblocks = Arrays.stream(reftable, 0, reftableLength).filter(offset -> offset != 0).count();
        long written = 0;
        for (int k = 0; k < reftableLength; k++) {
            if (reftable[k] == 0) {
                continue;
            }
            progress.accept(0.5 + 0.5 * written++ / refblocks);
            Arrays.fill(block, (byte) 0);
            for (int i = 0; i < perBlock; i++) {
                long refcount = newRefcount(k * perBlock + i);
                if (refcount != 0) {
                    codec.set(block, i, refcount);
                }
            }
            file.write(ByteBuffer.wrap(block), reftable[k]);
        }
        byte[] table = new byte[(int) (reftableClusters * clusterSize)];
        for (int k = 0; k < reftableLength; k++) {
            Bytes.putLong(table, k * 8, reftable[k]);
        }
        file.write(ByteBuffer.wrap(table), reftableStart << clusterBits);
    }

    /** A cluster's refcount once the header has switched: the old structures are free then. */
    private long newRefcount(long c) throws IOException {
        if (taken.contains(c)) {
            return 1;
        }
        return isOldStructure(c) ? 0 : storedRefcount(c);
    }

    private long storedRefcount(long c) throws IOException {
        return c < fileClusters ? stored.get(new HostCluster(c)) : 0;
    }

    private boolean isOldStructure(long c) {
        return (c >= oldTableStart && c < oldTableEnd) || stored.isRefblock(c);
    }
}
