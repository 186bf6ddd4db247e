package io.github.qcowloom.image;

import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.snapshot.Snapshot;
import java.util.List;

/** Where the snapshot table and the snapshots' L1 tables lie, for the overlap check (QEMU's cached mode). */
record SnapshotAreas(long tableOffset, long tableBytes, long[] l1Offsets, long[] l1Bytes) {
    static final SnapshotAreas NONE = new SnapshotAreas(0, 0, new long[0], new long[0]);

    static SnapshotAreas of(long tableOffset, List<Snapshot> snapshots) {
        long[] offsets = new long[snapshots.size()];
        long[] bytes = new long[snapshots.size()];
        for (int i = 0; i < offsets.length; i++) {
            offsets[i] = snapshots.get(i).l1TableOffset();
            bytes[i] = Integer.toUnsignedLong(snapshots.get(i).l1Size()) * 8;
        }
        return new SnapshotAreas(snapshots.isEmpty() ? 0 : tableOffset, SnapshotTable.encodedLength(snapshots),
                offsets, bytes);
    }
}
