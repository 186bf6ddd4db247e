package io.github.qcowloom.cli;

import io.github.qcowloom.snapshot.Snapshot;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.List;

/**
 * The snapshot table as qemu-img prints it (bdrv_snapshot_dump) in {@code snapshot -l} and {@code info}: a header
 * line, then one line per snapshot; dates in local time, the VM clock as h:mm:ss.mmm, no icount when unrecorded.
 */
final class SnapshotListing {
    private SnapshotListing() {
    }

    /** "Snapshot list:", the column titles and one line per snapshot, each ending in a newline. */
    static String of(List<Snapshot> snapshots) {
        StringBuilder sb = new StringBuilder("Snapshot list:\n").append(header());
        for (Snapshot s : snapshots) {
            sb.append(line(s.id(), s.name(), s.vmStateSize(), s.dateSec(), s.vmClockNsec(),
                    s.icount() == -1 ? null : s.icount()));
        }
        return sb.toString();
    }

    static String header() {
        return String.format("%-10s%-17s%8s%20s%13s%11s%n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
    }

    /** One snapshot's line; {@code icount} null when the snapshot does not record one. */
    static String line(String id, String name, long vmStateSize, long dateSec, long vmClockNsec, Long icount) {
        DateTimeFormatter date = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss").withZone(ZoneId.systemDefault());
        long secs = Long.divideUnsigned(vmClockNsec, 1_000_000_000L);
        long millis = Long.remainderUnsigned(vmClockNsec, 1_000_000_000L) / 1_000_000;
        String clock = String.format("%02d:%02d:%02d.%03d", secs / 3600, (secs / 60) % 60, secs % 60, millis);
        return leftAligned(id, 9) + " " + leftAligned(name, 16) + String.format(" %8s %19s %12s %10s%n",
                Sizes.human(vmStateSize), date.format(Instant.ofEpochSecond(dateSec)), clock,
                icount == null ? "" : icount.toString());
    }

    /** {@code text} padded to {@code width} bytes, as C's printf pads: a name like "café" is 5 bytes wide. */
    private static String leftAligned(String text, int width) {
        return text + " ".repeat(Math.max(0, width - text.getBytes(StandardCharsets.UTF_8).length));
    }
}
