package io.github.qcowloom.snapshot;

import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.image.TableEditor;
import java.io.IOException;
import java.util.List;

/**
 * QEMU's qcow2_write_snapshots: a snapshot table is never changed in place. A whole new table is written to new
 * clusters, then the header points to it in one synced write, then the old table is freed; a crash at any point
 * leaves the old table or the new one in force, and at worst leaked clusters.
 */
final class SnapshotTableWriter {
    private SnapshotTableWriter() {
    }

    /**
     * Replaces the image's snapshot table by {@code snapshots}, written as QEMU writes entries; {@code breakage} is
     * {@link Breakage#NONE} but in the test that breaks the table ordering.
     */
    static void write(TableEditor tables, List<Snapshot> snapshots, Breakage breakage) throws IOException {
        Header header = tables.header();
        List<Snapshot> old = tables.snapshots();
        List<Snapshot> entries = snapshots.stream().map(s -> s.completed(header.diskSize())).toList();
        if (SnapshotTable.encodedLength(entries) > Limits.MAX_SNAPSHOT_TABLE_BYTES) {
            throw new ImageTooLargeException("Snapshot table would exceed " + Limits.MAX_SNAPSHOT_TABLE_BYTES
                    + " bytes");
        }
        byte[] table = SnapshotTable.encode(entries);
        // No snapshots left: no table (QEMU writes offset 0 then).
        long offset = table.length == 0 ? 0 : tables.allocate(table.length);
        if (table.length > 0) {
            try {
                // 1. The new table's refcounts reach the disk before anything points to its clusters.
                tables.flush();
                // 2. The table, durable before the header points to it.
                tables.writeNewTable(offset, table, "new snapshot table");
                if (breakage != Breakage.TABLE_UNSYNCED) {
                    tables.flush();
                }
            } catch (IOException | RuntimeException e) {
                // Nothing points to the new clusters: give them back (QEMU's fail path).
                try {
                    tables.free(offset, table.length);
                } catch (IOException | RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw e;
            }
        }
        // 3. nb_snapshots and snapshots_offset in one synced header write: the switch. Should it fail, the header
        // may point to either table, so neither is freed (a leak at worst; QEMU frees the new one here).
        tables.publishSnapshots(entries, offset);
        // 4. The header no longer points to the old table, durably: its clusters may be reused at once.
        if (header.nbSnapshots() > 0) {
            tables.free(header.snapshotsOffset(), SnapshotTable.encodedLength(old));
        }
    }
}
