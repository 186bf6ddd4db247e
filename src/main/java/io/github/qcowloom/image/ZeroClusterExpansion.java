package io.github.qcowloom.image;

import io.github.qcowloom.alloc.CopiedFlags;
import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.DoubleConsumer;
import java.util.stream.LongStream;

/**
 * QEMU's qcow2_expand_zero_clusters, for a downgrade to version 2, which has no zero flag: in the active L1 table's
 * L2 tables and then in every snapshot's, each zero cluster becomes what reads the same without the flag. Without a
 * backing file an unallocated entry reads as zeroes, so a zero cluster with no host cluster becomes one. With a
 * backing file it gets a new host cluster of zeroes. A zero cluster that kept its host cluster gets zeroes there and
 * loses the flag.
 *
 * <p>Unlike QEMU, a kept host cluster that other tables reference too (a snapshot's after a copy on write, or the
 * active image's after it applied a snapshot) is not zeroed: the zeroes would show there. The entry is then treated
 * as one without a host cluster, and gives up its reference once the table no longer names the cluster. A cluster
 * so given up may be left to one active entry, which needs its COPIED flag: the header is marked dirty before the
 * first reference is given up, and clean once the active tree's flags are set from the lowered refcounts, so that a
 * crash in between leaves an image that its next read-write open repairs, as after a crash with lazy refcounts.
 *
 * <p>The image is closed and clean; its file is edited in batches of L2 tables: the batch's zeroes and new clusters'
 * refcounts are synced, then its tables written and synced, then the references given up lowered and synced. A
 * crash leaves each entry as it was or as it is meant to be, and at worst leaked clusters. A batch holds up to
 * {@link #BATCH_BYTES} of tables, so that 512-byte clusters do not cost three syncs per 32 KiB of guest disk.
 *
 * <p>Memory: one L1 table at a time, the batch, and the clusters of every table (8 bytes each), against which a
 * zero cluster's own host cluster is checked before it is zeroed.
 */
final class ZeroClusterExpansion {
    /** The L2 tables written per batch of syncs, at most. */
    private static final int BATCH_BYTES = 1 << 20;

    /** A reference a table gives up: {@code refs} (one per L1 table naming the table) from {@code host}. */
    private record Release(long host, long refs) {
    }

    private final Storage file;
    private final Header header;
    private final List<Snapshot> snapshots;
    private final RefcountTable refcounts;
    private final TableCache refblocks;
    private final HeaderBits headerBits;
    private final ByteBuffer zeroes;
    /** The clusters of every L2 table, sorted, each once: no zero cluster may zero one of them. */
    private long[] l2Clusters;
    /**
     * The clusters of the header, the L1 tables, the refcount table as it was, the snapshot table and the bitmap
     * directory, sorted: no zero cluster may zero one of them either (refblocks and a moved refcount table are asked
     * of the refcount table).
     */
    private long[] otherMetadata;
    /** The L2 tables expanded, by their index in {@link #l2Clusters}: a table shared by L1 tables is done once. */
    private final BitSet expanded = new BitSet();
    /** The L1 tables to walk: the active one (null), then each snapshot's, each place once (they may share one). */
    private List<Snapshot> l1Places;
    /** Tables changed and not yet written, by offset, in the order met. */
    private final Map<Long, byte[]> batch = new LinkedHashMap<>();
    private final List<Release> released = new ArrayList<>();
    /** The batch wrote zeroes or took clusters: they must be durable before its tables. */
    private boolean batchNeedsSync;
    private boolean releasedAny;

    private ZeroClusterExpansion(Storage file, Header header, List<Snapshot> snapshots) throws IOException {
        this.file = file;
        this.header = header;
        this.snapshots = snapshots;
        this.refblocks = RefcountTable.offlineCache(file, header, 64);
        this.refcounts = new RefcountTable(file, header, refblocks);
        this.headerBits = new HeaderBits(file, header.version(), header.incompatibleFeatures());
        this.zeroes = ByteBuffer.allocate((int) header.clusterSize());
    }

    /**
     * Expands the zero clusters of the clean image in {@code file}, whose snapshots are {@code snapshots}.
     *
     * @throws MetadataCorruptionException if a table contradicts the refcounts or names metadata as data; the
     *     image is marked corrupt then, as QEMU marks it
     */
    static void run(Storage file, Header header, List<Snapshot> snapshots, DoubleConsumer progress)
            throws IOException {
        ZeroClusterExpansion expansion = new ZeroClusterExpansion(file, header, snapshots);
        try {
            expansion.run(progress);
        } catch (MetadataCorruptionException e) {
            expansion.headerBits.markCorrupt();
            throw e;
        }
    }

    private void run(DoubleConsumer progress) throws IOException {
        l1Places = ImageMetadata.distinctL1Tables(header, snapshots);
        l2Clusters = ImageMetadata.distinctL2Clusters(file, header, snapshots);
        otherMetadata = otherMetadata();
        long entries = 0;
        for (int i = 0; i < l1Places.size(); i++) {
            entries += l1Places.get(i) == null ? header.l1Size() : l1Places.get(i).l1Size();
        }
        long visited = 0;
        for (int i = 0; i < l1Places.size(); i++) {
            for (long entry : ImageMetadata.readL1(file, header, l1Places.get(i))) {
                long l2Offset = L1Entry.l2Offset(entry);
                if (l2Offset != 0) {
                    expandTable(l2Offset);
                }
                if ((++visited & 63) == 0 || visited == entries) {
                    progress.accept((double) visited / entries);
                }
            }
            writeBatch();
        }
        if (releasedAny) {
            CopiedFlags.repair(file, header, refcounts, new ArrayList<>());
            file.flush();
            headerBits.markClean();
        }
    }

    private long[] otherMetadata() {
        List<long[]> ranges = new ArrayList<>();
        ranges.add(new long[] {0, 1});
        ranges.add(new long[] {header.l1TableOffset(), header.l1Size() * 8L});
        ranges.add(new long[] {header.refcountTableOffset(),
            (long) header.refcountTableClusters() << header.clusterBits()});
        if (!snapshots.isEmpty()) {
            ranges.add(new long[] {header.snapshotsOffset(), SnapshotTable.encodedLength(snapshots)});
        }
        for (int i = 1; i < l1Places.size(); i++) {
            ranges.add(new long[] {l1Places.get(i).l1TableOffset(), l1Places.get(i).l1Size() * 8L});
        }
        BitmapDirectory.Location.of(header).ifPresent(d -> ranges.add(new long[] {d.offset(), d.size()}));
        int bits = header.clusterBits();
        return ranges.stream().filter(r -> r[1] > 0)
                .flatMapToLong(r -> LongStream.rangeClosed(r[0] >>> bits, (r[0] + r[1] - 1) >>> bits))
                .sorted().distinct().toArray();
    }

    private void expandTable(long l2Offset) throws IOException {
        int clusterBits = header.clusterBits();
        int index = Arrays.binarySearch(l2Clusters, l2Offset >>> clusterBits);
        if (expanded.get(index)) {
            return; // named by another L1 table (or twice by one): it has no zero cluster left
        }
        expanded.set(index);
        boolean backed = header.backingFile() != null;
        // Every L1 table naming this L2 table holds one reference to each cluster it names.
        long tableRefs = refcounts.get(new HostCluster(l2Offset >>> clusterBits));
        if (tableRefs == 0) {
            throw new MetadataCorruptionException("L2 table at " + Bytes.cHex(l2Offset) + " has refcount 0");
        }
        byte[] table = ImageMetadata.readBytes(file, l2Offset, (int) header.clusterSize());
        boolean changed = false;
        for (int j = 0; j < table.length / 8; j++) {
            long entry = Bytes.getLong(table, j * 8);
            ClusterType type = L2Entry.type(entry, false, false);
            if (type != ClusterType.ZERO_PLAIN && type != ClusterType.ZERO_ALLOC) {
                continue;
            }
            long host = L2Entry.hostOffset(entry);
            if (type == ClusterType.ZERO_ALLOC) {
                long refcount = requireDataCluster(host, l2Offset, j);
                if (refcount > tableRefs) {
                    released.add(new Release(host, tableRefs));
                    host = 0;
                }
            }
            if (host == 0 && backed) {
                host = refcounts.allocate(1).bytes();
                if (tableRefs > 1) {
                    refcounts.update(new HostCluster(host >>> clusterBits), tableRefs - 1);
                }
            }
            if (host != 0) {
                if (host == L2Entry.hostOffset(entry)) {
                    file.writeZeroes(host, header.clusterSize()); // kept allocated, as QEMU keeps it
                } else {
                    zero(host);
                }
                batchNeedsSync = true;
            }
            long copied = tableRefs == 1 && host != 0 ? L2Entry.COPIED : 0;
            Bytes.putLong(table, j * 8, host | copied);
            changed = true;
        }
        if (changed) {
            batch.put(l2Offset, table);
            if ((long) batch.size() * table.length >= BATCH_BYTES) {
                writeBatch();
            }
        }
    }

    /**
     * QEMU's checks before it writes zeroes into a zero cluster's own host cluster (alignment, and its overlap
     * check against the header and every table); returns the cluster's refcount, which must not be 0.
     */
    private long requireDataCluster(long host, long l2Offset, int index) throws IOException {
        if ((host & (header.clusterSize() - 1)) != 0) {
            throw ClusterMapper.unaligned(host, l2Offset, index);
        }
        long cluster = host >>> header.clusterBits();
        String metadata = metadataAt(cluster);
        if (metadata != null) {
            throw new MetadataCorruptionException("Zero cluster at L2 offset " + Bytes.cHex(l2Offset) + ", index "
                    + index + ", names host cluster " + Bytes.cHex(host) + ": " + metadata);
        }
        long refcount = refcounts.get(new HostCluster(cluster));
        if (refcount == 0) {
            throw new MetadataCorruptionException("Zero cluster at L2 offset " + Bytes.cHex(l2Offset) + ", index "
                    + index + ", names host cluster " + Bytes.cHex(host) + ", whose refcount is 0");
        }
        return refcount;
    }

    /** What metadata {@code cluster} holds, or null. */
    private String metadataAt(long cluster) {
        if (Arrays.binarySearch(otherMetadata, cluster) >= 0) {
            return "the header, an L1 table, the refcount table, the snapshot table or the bitmap directory";
        }
        long table = refcounts.tableOffset() >>> header.clusterBits();
        if (refcounts.isRefblock(cluster) || (cluster >= table && cluster < table + refcounts.tableClusters())) {
            return "a refcount block or the refcount table";
        }
        return Arrays.binarySearch(l2Clusters, cluster) >= 0 ? "an L2 table" : null;
    }

    /**
     * Makes the new cluster at {@code host} read as zeroes as cheaply as the host allows: past the end of the file by
     * growing it (a hole), inside it by punching a hole where the host can, and by writing zeroes elsewhere. A large
     * zeroed range over a backing file so costs no data written (QEMU allocates it).
     */
    private void zero(long host) throws IOException {
        long cs = header.clusterSize();
        if (host >= file.size()) {
            file.extendTo(host + cs);
        } else if (!file.discard(host, cs)) {
            file.write(zeroes.clear(), host);
        }
    }

    /** Writes the batch's tables, in the order that keeps every crash state sound (see the class comment). */
    private void writeBatch() throws IOException {
        if (batch.isEmpty()) {
            return;
        }
        // The zeroes and the new clusters' refcounts are durable before a table names the clusters.
        if (batchNeedsSync) {
            refblocks.writeBack(refblocks.copyDirty());
            file.flush();
            batchNeedsSync = false;
        }
        for (Map.Entry<Long, byte[]> t : batch.entrySet()) {
            file.write(ByteBuffer.wrap(t.getValue()), t.getKey());
        }
        file.flush();
        batch.clear();
        if (released.isEmpty()) {
            return;
        }
        // Only once no table names them do the clusters others share lose these tables' references; until the
        // COPIED flags follow, the image is dirty.
        if (!releasedAny) {
            headerBits.markDirty();
            releasedAny = true;
        }
        for (Release r : released) {
            refcounts.update(new HostCluster(r.host() >>> header.clusterBits()), -r.refs());
        }
        refblocks.writeBack(refblocks.copyDirty());
        file.flush();
        released.clear();
    }
}
