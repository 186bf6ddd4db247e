package io.github.qcowloom.check;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The snapshot table as qemu-img check reads it (QEMU's qcow2_check_read_snapshot_table): the pointer is
 * validated here rather than at open, bytes past the end of the file read as zeros, and what is wrong with the
 * entries counts as corruptions. Under -r all, what QEMU cuts away is cut: entries past 65536 or past 64 MiB of
 * table are dropped (fixed by writing the shorter count, {@link SnapshotTableRewrite#writeCount}), extra data
 * past 1024 bytes is cut, and v3 entries without a disk size are completed (both fixed by writing the table
 * anew, {@link SnapshotTableRewrite#rewrite}).
 */
final class SnapshotTableCheck {
    /** The errno texts qemu-img prints when the table cannot be read. */
    private static final String EFBIG = "File too large";
    private static final String EINVAL = "Invalid argument";

    /** The entries kept, as read (extra data cut to 1024 bytes under -r all). */
    final List<Snapshot> snapshots;
    final long offset;
    /** Bytes the kept entries span on disk (QEMU's snapshots_size), which the refcount walk counts. */
    final long size;
    /** Entries dropped from the end (-r all only); the header's count is fixed at once. */
    final long dropped;
    /** Corruptions that writing the table anew fixes: extra data cut, incomplete v3 entries. */
    final int corruptions;
    /** What was found and done, in QEMU's words and order. */
    final List<String> messages;

    private SnapshotTableCheck(SnapshotTable.Contents table, long offset, long dropped, int corruptions,
            List<String> messages) {
        this.snapshots = table.snapshots();
        this.offset = offset;
        this.size = table.size();
        this.dropped = dropped;
        this.corruptions = corruptions;
        this.messages = List.copyOf(messages);
    }

    /**
     * Reads the table {@code header} points to; {@code repair} is -r all. A table that cannot be read fails the
     * check, with QEMU's lines and errno text.
     */
    static SnapshotTableCheck read(Storage file, Header header, boolean repair) throws IOException {
        long count = Integer.toUnsignedLong(header.nbSnapshots());
        long offset = header.snapshotsOffset();
        List<String> lines = new ArrayList<>();
        long dropped = 0;
        if (count > Limits.MAX_SNAPSHOTS && repair) {
            dropped = count - Limits.MAX_SNAPSHOTS;
            lines.add("Discarding " + dropped + " overhanging snapshots");
            count = Limits.MAX_SNAPSHOTS;
        }
        // QEMU's qcow2_validate_table on the pointer: EFBIG for the count, EINVAL for the offset.
        if (count > Limits.MAX_SNAPSHOTS) {
            lines.add("ERROR snapshot table too large");
            lines.add("You can force-remove all " + (count - Limits.MAX_SNAPSHOTS)
                    + " overhanging snapshots with qemu-img check -r all");
            throw new CheckFailedException(lines, EFBIG);
        }
        if (offset < 0 || offset > Long.MAX_VALUE - count * SnapshotTable.FIXED_ENTRY_SIZE
                || offset % header.clusterSize() != 0) {
            lines.add("ERROR snapshot table offset invalid");
            throw new CheckFailedException(lines, EINVAL);
        }
        SnapshotTable.Contents table;
        try {
            table = ImageMetadata.readSnapshotsForCheck(file, offset, (int) count, repair);
        } catch (CorruptImageException e) {
            lines.add("ERROR failed to read the snapshot table: " + e.getMessage());
            throw new CheckFailedException(lines, reason(e));
        }
        lines.addAll(table.repairs());
        dropped += table.overhanging();
        int corruptions = table.extraDataTruncated();
        // v3 entries need the 64-bit vm-state size and the disk size: 16 bytes of extra data.
        if (header.version() >= 3) {
            for (int i = 0; i < table.snapshots().size(); i++) {
                if (table.snapshots().get(i).extraDataLength() < 16) {
                    corruptions++;
                    lines.add((repair ? "Repairing" : "ERROR") + " snapshot table entry " + i + " is incomplete");
                }
            }
        }
        return new SnapshotTableCheck(table, offset, dropped, corruptions, lines);
    }

    /** EFBIG for sizes past QEMU's limits, else EINVAL. */
    private static String reason(CorruptImageException e) {
        return e instanceof ImageTooLargeException ? EFBIG : EINVAL;
    }
}
