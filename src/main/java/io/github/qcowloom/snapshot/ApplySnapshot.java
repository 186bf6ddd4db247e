package io.github.qcowloom.snapshot;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.image.TableEditor;
import java.io.IOException;

/**
 * QEMU's qcow2_snapshot_goto: the active image becomes the snapshot's. The snapshot's tree gains a reference
 * before the active L1 table points to it, and the old active tree loses its reference only after the active L1
 * table no longer does; a crash between leaves leaked clusters. The virtual size becomes the snapshot's.
 */
final class ApplySnapshot {
    private ApplySnapshot() {
    }

    /** Applies {@code wanted}; {@code breakage} is {@link Breakage#NONE} but in the test that breaks the apply. */
    static void run(TableEditor tables, Snapshot wanted, Breakage breakage) throws IOException {
        tables.requireGuestWrites();
        tables.requireNoDisabledBitmaps();
        Snapshot snapshot = Snapshots.current(tables, wanted);
        Header header = tables.header();
        Snapshots.requireNoDataFile(header);
        long[] snapshotL1 = tables.readL1(snapshot);
        long size = header.diskSize();
        long diskSize = snapshot.diskSizeOr(size);
        // QEMU's truncate to the snapshot's size refuses these, before anything changes.
        if (diskSize < 0) { // a stored size of 2^63 or more
            throw new ImageException("Image size cannot be negative");
        }
        if (diskSize % 512 != 0) {
            throw new ImageException("The new size must be a multiple of 512");
        }
        if (diskSize != size && header.version() < 3) {
            throw new UnsupportedFeatureException("resizing v2 images with snapshots",
                    "Can't resize a v2 image which has snapshots (the snapshot's disk size is " + diskSize + ")");
        }
        // 1. The snapshot's tree gains the active image's reference (in the cache; an overflow changes nothing).
        tables.addReferences(snapshotL1, 1);
        // 2. The snapshot's virtual size (QEMU truncates first): an L1 table large enough for it, then the size.
        if (diskSize != size) {
            long needed = Limits.sizeToL1(diskSize, header.clusterBits(), header.l2Bits());
            if (needed < 0 || needed > Limits.MAX_L1_BYTES / 8) {
                throw new ImageTooLargeException("Snapshot disk size too large: " + diskSize);
            }
            tables.growL1((int) needed);
            tables.writeSize(diskSize);
        }
        tables.growL1(snapshotL1.length);
        // 3. The new references reach the disk before the active L1 table points to the tree.
        tables.flush();
        long[] oldL1 = tables.activeL1();
        if (breakage == Breakage.HALF_SWITCHED_APPLY) {
            long[] half = oldL1.clone();
            System.arraycopy(snapshotL1, 0, half, 0, snapshotL1.length / 2);
            tables.replaceActiveL1(half);
        }
        // 4. The active L1 table becomes the snapshot's, synced (COPIED cleared until step 6).
        tables.replaceActiveL1(snapshotL1);
        // 5. Nothing on disk points to the old tree from the active image any more: it loses that reference.
        tables.addReferences(oldL1, -1);
        // 6. COPIED where the refcounts are 1 again.
        tables.markActiveCopied();
    }
}
