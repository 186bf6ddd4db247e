package io.github.qcowloom.snapshot;

import io.github.qcowloom.image.TableEditor;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * QEMU's qcow2_snapshot_delete: the snapshot table is rewritten first, so that from then on nothing points to the
 * snapshot's tree and a crash only leaks; then its clusters and its L1 table lose the snapshot's reference, and
 * COPIED is set where the active tree now owns clusters alone.
 */
final class DeleteSnapshot {
    private DeleteSnapshot() {
    }

    /** Deletes {@code wanted}; {@code breakage} is {@link Breakage#NONE} but in the tests that break the order. */
    static void run(TableEditor tables, Snapshot wanted, Breakage breakage) throws IOException {
        Snapshot snapshot = Snapshots.current(tables, wanted);
        Snapshots.requireNoDataFile(tables.header());
        // Validated and read before anything changes (QEMU's qcow2_validate_table).
        long[] l1 = tables.readL1(snapshot);
        List<Snapshot> rest = new ArrayList<>(tables.snapshots());
        rest.remove(tables.snapshots().indexOf(snapshot));
        if (breakage == Breakage.REFCOUNTS_BEFORE_TABLE) {
            tables.addReferences(l1, -1);
            tables.flush();
        }
        // 1. The table without the snapshot, then the header pointing to it.
        SnapshotTableWriter.write(tables, rest, breakage);
        // 2. Its tree and its L1 table lose the snapshot's reference.
        if (breakage != Breakage.REFCOUNTS_BEFORE_TABLE) {
            tables.addReferences(l1, -1);
        }
        tables.free(snapshot.l1TableOffset(), Integer.toUnsignedLong(snapshot.l1Size()) * 8);
        // 3. COPIED where the active tree's clusters are its alone again.
        tables.markActiveCopied();
    }
}
