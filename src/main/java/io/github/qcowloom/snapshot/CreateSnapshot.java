package io.github.qcowloom.snapshot;

import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.RefcountOverflowException;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.image.TableEditor;
import java.io.IOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

/**
 * QEMU's qcow2_snapshot_create: a copy of the active L1 table, one more reference on every cluster of the active
 * tree (with COPIED cleared where clusters become shared), then the snapshot table that makes the snapshot exist.
 * A crash before the table switch leaves leaked clusters; after it, a complete snapshot.
 */
final class CreateSnapshot {
    private CreateSnapshot() {
    }

    /** Creates the snapshot; {@code breakage} is {@link Breakage#NONE} but in the test that breaks the order. */
    static Snapshot run(TableEditor tables, String name, Instant now, Breakage breakage) throws IOException {
        List<Snapshot> existing = tables.snapshots();
        if (existing.size() >= Limits.MAX_SNAPSHOTS) {
            throw new ImageTooLargeException("The image has " + existing.size()
                    + " snapshots already, the most a qcow2 image can hold");
        }
        Snapshots.requireNoDataFile(tables.header());
        long[] l1 = tables.activeL1();
        // 0. A refcount that cannot count the snapshot's reference refuses it before anything changes.
        try {
            tables.requireRoomForOneMoreReference(l1);
        } catch (RefcountOverflowException e) {
            throw new RefcountOverflowException(e.cluster(), e.refcountBits(), "Cannot create a snapshot: the "
                    + e.refcountBits() + "-bit refcount of cluster " + e.cluster()
                    + " cannot count one more reference (" + e.getMessage() + ")");
        }
        // 1. The copy of the active L1 table, in clusters nothing points to yet; the flushes below make it durable
        // before the snapshot table points to it. Before the references, as in QEMU: allocating the copy may write
        // refblocks back, and a full disk must find the tree's refcounts as they were (raised first, they reached
        // the disk with those refblocks, and a failed copy left every shared cluster at 2 under a COPIED flag).
        byte[] copy = new byte[l1.length * 8];
        for (int i = 0; i < l1.length; i++) {
            Bytes.putLong(copy, i * 8, l1[i]);
        }
        long l1Offset = tables.allocate(copy.length);
        tables.writeNewTable(l1Offset, copy, "snapshot L1 table");
        // 2. Every cluster of the tree gains the snapshot's reference, in the cache (room checked in step 0).
        tables.addReferences(l1, 1);
        // 3. COPIED cleared where clusters are now shared: refcounts, then L2 flags, then L1 entries reach the disk,
        // all before the table that makes the snapshot exist.
        tables.markActiveCopied();
        long diskSize = tables.header().diskSize();
        Snapshot snapshot = new Snapshot(l1Offset, l1.length, SnapshotIds.next(existing), name,
                now.getEpochSecond(), now.getNano() / 1000 * 1000L, 0, 0, Snapshot.extraData(0, diskSize, 0));
        List<Snapshot> table = new ArrayList<>(existing);
        table.add(snapshot);
        // 4. The new snapshot table, then the header that points to it.
        SnapshotTableWriter.write(tables, table, breakage);
        return tables.snapshots().get(table.size() - 1);
    }
}
