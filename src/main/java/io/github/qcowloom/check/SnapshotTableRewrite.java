package io.github.qcowloom.check;

import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.snapshot.Snapshot;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Fixes the snapshot table on disk for qemu-img check -r all, crash-safe as QEMU: a shorter count goes into the
 * header at once (qcow2_check_read_snapshot_table), and a table whose entries changed is written anew
 * (qcow2_write_snapshots) once the refcounts are right, since that allocates clusters: new table synced, its
 * refcounts synced, then the header switched and synced, then the old table freed.
 */
final class SnapshotTableRewrite {
    private SnapshotTableRewrite() {
    }

    /** Writes {@code count} as the header's number of snapshots, and syncs. */
    static void writeCount(CheckedFile f, long count) throws IOException {
        f.file.write(HeaderField.NB_SNAPSHOTS.encode(count), HeaderField.NB_SNAPSHOTS.offset());
        // Durable before the refcount repair that follows: it frees what the dropped entries referenced, and a
        // crash must not find them listed again once those clusters are reused. Until then they only leak.
        f.file.flush();
    }

    /**
     * Writes the entries of {@code old} as QEMU writes every entry back ({@link Snapshot#completed}) to newly
     * allocated clusters, points the header to them and frees the old table. A crash at any point leaves either
     * the old table or the new one in place, at worst with leaked clusters.
     */
    static void rewrite(CheckedFile f, SnapshotTableCheck old, List<String> messages) throws IOException {
        List<Snapshot> entries = old.snapshots.stream().map(s -> s.completed(f.header.diskSize())).toList();
        byte[] table = SnapshotTable.encode(entries);
        long cs = f.header.clusterSize();
        // Counted in the cache only, for now. No entry left (every one was cut): no table, offset 0, as QEMU's
        // qcow2_write_snapshots writes for an empty list.
        long offset = table.length == 0 ? 0 : f.table.allocate((int) ((table.length + cs - 1) / cs)).bytes();
        if (table.length > 0) {
            f.file.write(ByteBuffer.wrap(table), offset);
        }
        // The new table is durable before its refcounts: a crash in between leaves it in free clusters inside the
        // file. The other way round a crash could leave clusters counted past the end of the file, a leak no
        // check sees until the file grows over them.
        f.file.flush();
        // The new clusters' refcounts reach the disk before anything points to them.
        f.writeBack();
        // nb_snapshots and snapshots_offset in one 12-byte write, as QEMU's qcow2_write_snapshots does.
        f.file.write(HeaderField.NB_SNAPSHOTS.encode(entries.size(), offset), HeaderField.NB_SNAPSHOTS.offset());
        // The header switch is durable before the old table is freed: freed clusters may be reused at once.
        f.file.flush();
        free(f, old.offset, old.size, messages);
        f.writeBack();
    }

    /**
     * Lowers the refcount of every cluster of [offset, offset + size) by one, or of none if one of them is
     * already 0 or cannot be read (QEMU's update_refcount undoes a partial decrease, and qcow2_free_clusters
     * reports it).
     */
    private static void free(CheckedFile f, long offset, long size, List<String> messages) throws IOException {
        if (size <= 0) {
            return;
        }
        int bits = f.header.clusterBits();
        long first = offset >>> bits;
        long last = (offset + size - 1) >>> bits;
        try {
            for (long c = first; c <= last; c++) {
                if (f.table.get(new HostCluster(c)) == 0) {
                    messages.add("qcow2_free_clusters failed: Invalid argument");
                    return;
                }
            }
        } catch (CorruptImageException e) {
            messages.add("qcow2_free_clusters failed: Invalid argument");
            return;
        }
        for (long c = first; c <= last; c++) {
            f.table.update(new HostCluster(c), -1);
        }
    }
}
