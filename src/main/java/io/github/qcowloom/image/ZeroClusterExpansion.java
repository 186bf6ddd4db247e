package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * QEMU's qcow2_expand_zero_clusters, for a downgrade to version 2, which has no zero flag: in the active L1 table's
 * L2 tables and then in every snapshot's, each zero cluster becomes what reads the same without the flag. Without a
 * backing file an unallocated entry reads as zeroes, so a zero cluster with no host cluster becomes one. With a
 * backing file it gets a new host cluster of zeroes. A zero cluster that kept its host cluster gets zeroes written
 * there and loses the flag.
 *
 * <p>Unlike QEMU, a kept host cluster that other tables reference too (a snapshot's, after a copy on write) is not
 * written: the zeroes would show in them. The entry is then treated as one without a host cluster, and drops its
 * reference once the table no longer names the cluster.
 *
 * <p>The image is closed and clean; its file is edited table by table, each crash-safe as the driver's own
 * allocations: the new clusters' zeroes and refcounts are synced before the L2 table that names them is written
 * and synced, and references are dropped only after that. A crash leaves each table as it was or as it is meant
 * to be, and at worst leaked clusters.
 */
final class ZeroClusterExpansion {
    private final Storage file;
    private final Header header;
    private final RefcountTable refcounts;
    private final TableCache refblocks;
    private final ByteBuffer zeroes;

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
        expansion.expand(ImageMetadata.readBytes(file, header.l1TableOffset(), header.l1Size() * 8), header.l1Size());
        for (Snapshot s : snapshots) {
            expansion.expand(ImageMetadata.readBytes(file, s.l1TableOffset(), s.l1Size() * 8), s.l1Size());
        }
    }

    /** Expands the L2 tables of one L1 table (a table shared with one expanded before has nothing left). */
    private void expand(byte[] l1Bytes, int l1Size) throws IOException {
        long[] l1 = L1Entry.decodeTable(l1Bytes, l1Size);
        for (int i = 0; i < l1.length; i++) {
            long l2Offset = L1Entry.checkedL2Offset(l1[i], i, header.clusterSize());
            if (l2Offset != 0) {
                expandTable(l2Offset);
            }
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

    private void expandTable(long l2Offset) throws IOException {
        int bits = header.clusterBits();
        boolean backed = header.backingFile() != null;
        // Every L1 table naming this L2 table holds one reference to each cluster it names.
        long tableRefs = refcounts.get(new HostCluster(l2Offset >>> bits));
        byte[] table = ImageMetadata.readBytes(file, l2Offset, (int) header.clusterSize());
        List<Long> released = new ArrayList<>();
        boolean changed = false;
        boolean allocated = false;
        for (int j = 0; j < table.length / 8; j++) {
            long entry = Bytes.getLong(table, j * 8);
            ClusterType type = L2Entry.type(entry, false, false);
            if (type != ClusterType.ZERO_PLAIN && type != ClusterType.ZERO_ALLOC) {
                continue;
            }
            long host = L2Entry.hostOffset(entry);
            if (type == ClusterType.ZERO_ALLOC
                    && refcounts.get(new HostCluster(host >>> bits)) > tableRefs) {
                released.add(host);
                host = 0;
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
        if (!changed) {
            return;
        }
        // The zeroes and the new clusters' refcounts are durable before the table names the clusters.
        if (allocated) {
            refblocks.writeBack(refblocks.copyDirty());
        }
        file.flush();
        file.write(ByteBuffer.wrap(table), l2Offset);
        file.flush();
        // Only once no table names them do the clusters others share lose this table's references.
        for (long host : released) {
            refcounts.update(new HostCluster(host >>> bits), -tableRefs);
        }
        if (!released.isEmpty()) {
            refblocks.writeBack(refblocks.copyDirty());
            file.flush();
        }
    }
}
