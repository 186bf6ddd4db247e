package io.github.qcowloom.image;

import io.github.qcowloom.alloc.CopiedFlags;
import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.cache.TableCache;
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
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * QEMU's qcow2_expand_zero_clusters, for a downgrade to version 2, which has no zero flag: in the active L1 table's
 * L2 tables and then in every snapshot's, each zero cluster becomes what reads the same without the flag. Without a
 * backing file an unallocated entry reads as zeroes, so a zero cluster with no host cluster becomes one. With a
 * backing file it gets a new host cluster of zeroes. A zero cluster that kept its host cluster gets zeroes there and
 * loses the flag.
 *
 * <p>Unlike QEMU, a kept host cluster that other tables reference too (a snapshot's, after a copy on write) is not
 * zeroed: the zeroes would show in them. The entry is then treated as one without a host cluster, and drops its
 * reference once the table no longer names the cluster; the active tree's COPIED flags are then set from the
 * lowered refcounts, as a cluster so given up may be left to one active entry.
 *
 * <p>The image is closed and clean; its file is edited in batches of L2 tables, each crash-safe as the driver's own
 * allocations: the batch's zeroes and new clusters' refcounts are synced, then its tables written and synced, then
 * the references given up lowered. A crash leaves each table as it was or as it is meant to be, and at worst
 * leaked clusters. A batch holds up to {@link #BATCH_BYTES} of tables, so that 512-byte clusters do not cost three
 * syncs per 32 KiB of guest disk.
 */
final class ZeroClusterExpansion {
    /** The L2 tables written per batch of syncs, at most. */
    static final int BATCH_BYTES = 1 << 20;

    private final Storage file;
    private final Header header;
    private final RefcountTable refcounts;
    private final TableCache refblocks;
    private final ByteBuffer zeroes;
    /** Clusters no zero cluster may claim as its own: the header, every table but the refcount blocks. */
    private final Set<Long> metadata = new HashSet<>();
    /** Tables changed and not yet written, by offset, in the order met. */
    private final Map<Long, byte[]> batch = new LinkedHashMap<>();
    /** Each reference the batch's tables give up: the host cluster, once per L1 table naming the table. */
    private final List<long[]> released = new ArrayList<>();
    private boolean allocated;
    private boolean releasedAny;

    private ZeroClusterExpansion(Storage file, Header header) throws IOException {
        this.file = file;
        this.header = header;
        this.refblocks = new TableCache(file, (int) Math.min(header.clusterSize(), 4096), 64);
        this.refcounts = new RefcountTable(file, header, refblocks);
        this.zeroes = ByteBuffer.allocate((int) header.clusterSize());
    }

    /** Expands the zero clusters of the image in {@code file}, whose snapshots are {@code snapshots}. */
    static void run(Storage file, Header header, List<Snapshot> snapshots) throws IOException {
        ZeroClusterExpansion expansion = new ZeroClusterExpansion(file, header);
        List<long[]> l1Tables = new ArrayList<>();
        l1Tables.add(readL1(file, header.l1TableOffset(), header.l1Size(), header));
        for (Snapshot s : snapshots) {
            l1Tables.add(readL1(file, s.l1TableOffset(), s.l1Size(), header));
        }
        expansion.noteMetadata(l1Tables, snapshots);
        for (long[] l1 : l1Tables) {
            for (long entry : l1) {
                long l2Offset = L1Entry.l2Offset(entry);
                if (l2Offset != 0) {
                    expansion.expandTable(l2Offset);
                }
            }
            // A later L1 table may name these tables: it must read them expanded.
            expansion.writeBatch();
        }
        if (expansion.releasedAny) {
            CopiedFlags.repair(file, header, expansion.refcounts, new ArrayList<>());
        }
    }

    private static long[] readL1(Storage file, long offset, int entries, Header header) throws IOException {
        long[] l1 = L1Entry.decodeTable(ImageMetadata.readBytes(file, offset, entries * 8), entries);
        for (int i = 0; i < l1.length; i++) {
            L1Entry.checkedL2Offset(l1[i], i, header.clusterSize());
        }
        return l1;
    }

    private void noteMetadata(List<long[]> l1Tables, List<Snapshot> snapshots) {
        int bits = header.clusterBits();
        noteRange(0, 1);
        noteRange(header.l1TableOffset(), header.l1Size() * 8L);
        noteRange(refcounts.tableOffset(), (long) refcounts.tableClusters() << bits);
        if (!snapshots.isEmpty()) {
            noteRange(header.snapshotsOffset(), SnapshotTable.encodedLength(snapshots));
        }
        for (Snapshot s : snapshots) {
            noteRange(s.l1TableOffset(), s.l1Size() * 8L);
        }
        for (long[] l1 : l1Tables) {
            for (long entry : l1) {
                if (L1Entry.l2Offset(entry) != 0) {
                    metadata.add(L1Entry.l2Offset(entry) >>> bits);
                }
            }
        }
    }

    private void noteRange(long offset, long bytes) {
        int bits = header.clusterBits();
        for (long c = offset >>> bits; c <= (offset + Math.max(bytes, 1) - 1) >>> bits; c++) {
            metadata.add(c);
        }
    }

    private void expandTable(long l2Offset) throws IOException {
        if (batch.containsKey(l2Offset)) {
            writeBatch(); // named twice: read it again once written
        }
        int bits = header.clusterBits();
        boolean backed = header.backingFile() != null;
        // Every L1 table naming this L2 table holds one reference to each cluster it names.
        long tableRefs = refcounts.get(new HostCluster(l2Offset >>> bits));
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
                requireDataCluster(host, l2Offset, j);
                if (refcounts.get(new HostCluster(host >>> bits)) > tableRefs) {
                    released.add(new long[] {host, tableRefs});
                    host = 0;
                }
            }
            if (host == 0 && backed) {
                host = refcounts.allocate(1).bytes();
                if (tableRefs > 1) {
                    refcounts.update(new HostCluster(host >>> bits), tableRefs - 1);
                }
                allocated = true;
            }
            if (host != 0) {
                zero(host);
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

    /** QEMU's checks before it writes zeroes into a zero cluster's own host cluster. */
    private void requireDataCluster(long host, long l2Offset, int index) throws MetadataCorruptionException {
        if ((host & (header.clusterSize() - 1)) != 0) {
            throw new MetadataCorruptionException("Cluster allocation offset " + Bytes.cHex(host) + " unaligned (L2"
                    + " offset: " + Bytes.cHex(l2Offset) + ", L2 index: " + Bytes.cHex(index) + ")");
        }
        long cluster = host >>> header.clusterBits();
        if (metadata.contains(cluster) || refcounts.isRefblock(cluster)) {
            throw new MetadataCorruptionException("Zero cluster at L2 offset " + Bytes.cHex(l2Offset) + ", index "
                    + index + ", names host cluster " + Bytes.cHex(host) + ", which holds metadata");
        }
    }

    /**
     * Makes the cluster at {@code host} read as zeroes as cheaply as the host allows, as QEMU's bdrv_pwrite_zeroes
     * does: past the end of the file by growing it (a hole), inside it by punching a hole where the host can, and by
     * writing zeroes elsewhere. A large zeroed range over a backing file so costs no data written.
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
        if (allocated) {
            refblocks.writeBack(refblocks.copyDirty());
            allocated = false;
        }
        file.flush();
        for (Map.Entry<Long, byte[]> t : batch.entrySet()) {
            file.write(ByteBuffer.wrap(t.getValue()), t.getKey());
        }
        file.flush();
        batch.clear();
        // Only once no table names them do the clusters others share lose these tables' references.
        for (long[] r : released) {
            refcounts.update(new HostCluster(r[0] >>> header.clusterBits()), -r[1]);
        }
        if (!released.isEmpty()) {
            refblocks.writeBack(refblocks.copyDirty());
            file.flush();
            released.clear();
            releasedAny = true;
        }
    }
}
