package io.github.qcowloom.format;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.snapshot.Snapshot;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/** Codec of the snapshot table: variable-length entries, each padded to 8 bytes (QEMU's qcow2_read_snapshots). */
public final class SnapshotTable {
    private SnapshotTable() {
    }

    private static final byte[] NONE = new byte[0];

    /** Fixed part of an entry (QCowSnapshotHeader). */
    public static final int FIXED_ENTRY_SIZE = 40;

    /**
     * A table as read: the entries kept and the bytes they span from the table's offset (QEMU's snapshots_size:
     * the last entry unpadded, extra data counted at its stored size even where a repairing read cut it).
     *
     * @param extraDataTruncated entries whose extra data a repairing read cut to 1024 bytes
     * @param overhanging entries a repairing read dropped from the end because the table passed 64 MiB
     * @param repairs QEMU's line for each of those changes, in order
     */
    public record Contents(List<Snapshot> snapshots, long size, int extraDataTruncated, int overhanging,
            List<String> repairs) {
        public Contents {
            snapshots = List.copyOf(snapshots);
            repairs = List.copyOf(repairs);
        }
    }

    /**
     * Reads {@code count} entries starting at {@code offset} (QEMU's qcow2_read_snapshots). Every length field is
     * checked against QEMU's limits, and each entry against {@code fileLength}, before it is read.
     */
    public static List<Snapshot> parse(RangeReader reader, long offset, int count, long fileLength)
            throws IOException {
        return read(reader, offset, count, fileLength, false).snapshots();
    }

    /**
     * Reads {@code count} entries starting at {@code offset}, as QEMU's qcow2_do_read_snapshots does. Without
     * {@code repair} an entry with more than 1024 bytes of extra data, or a table past 64 MiB, is an error
     * carrying QEMU's message and hint. With {@code repair} (qemu-img check -r all) such extra data is cut to
     * 1024 bytes, and the entry that crosses 64 MiB is dropped with all after it. Entries must end at or below
     * {@code fileLength}: the open passes the file's length; the check passes {@link Long#MAX_VALUE} with a
     * reader that returns zeros past the end of the file, as QEMU's check reads them.
     */
    public static Contents read(RangeReader reader, long offset, int count, long fileLength, boolean repair)
            throws IOException {
        // Positions below stay far from overflow: the table is cut at 64 MiB of kept bytes, 2 GiB of stored ones.
        if (offset < 0 || offset > Long.MAX_VALUE - (1L << 40)) {
            throw new CorruptImageException("Snapshot table offset invalid: 0x" + Long.toHexString(offset));
        }
        List<Snapshot> out = new ArrayList<>(Math.min(count, 1024));
        List<String> repairs = new ArrayList<>();
        int truncated = 0;
        // QEMU's offset (where the next entry starts in the file) and table_length (the kept bytes).
        long pos = offset;
        long length = 0;
        for (int i = 0; i < count; i++) {
            long entryStart = pos;
            pos = Bytes.alignUp(pos, 8);
            length = Bytes.alignUp(length, 8);
            requireInFile(pos, FIXED_ENTRY_SIZE, fileLength, i);
            byte[] h = reader.read(pos, FIXED_ENTRY_SIZE);
            int idLen = Bytes.getUShort(h, 12);
            int nameLen = Bytes.getUShort(h, 14);
            long extraSize = Bytes.getUInt(h, 36);
            long keptExtra = extraSize;
            if (extraSize > Limits.MAX_SNAPSHOT_EXTRA_DATA) {
                if (!repair) {
                    throw new ImageTooLargeException("Too much extra metadata in snapshot table entry " + i
                            + "\nYou can force-remove this extra metadata with qemu-img check -r all");
                }
                repairs.add("Discarding too much extra metadata in snapshot table entry " + i + " (" + extraSize
                        + " > " + Limits.MAX_SNAPSHOT_EXTRA_DATA + ")");
                truncated++;
                keptExtra = Limits.MAX_SNAPSHOT_EXTRA_DATA;
            }
            long entryEnd = pos + FIXED_ENTRY_SIZE + extraSize + idLen + nameLen;
            length += FIXED_ENTRY_SIZE + keptExtra + idLen + nameLen;
            // QEMU reads the entry before this test; testing first reads nothing past the limit.
            if (length > Limits.MAX_SNAPSHOT_TABLE_BYTES || entryEnd - offset > Integer.MAX_VALUE) {
                int overhanging = count - i;
                if (!repair) {
                    throw new ImageTooLargeException("Snapshot table is too big\nYou can force-remove all "
                            + overhanging + " overhanging snapshots with qemu-img check -r all");
                }
                repairs.add("Discarding " + overhanging + " overhanging snapshots (snapshot table is too big)");
                return new Contents(out, entryStart - offset, truncated, overhanging, repairs);
            }
            long extraStart = pos + FIXED_ENTRY_SIZE;
            long idStart = extraStart + extraSize;
            requireInFile(idStart, idLen + nameLen, fileLength, i);
            byte[] extra = keptExtra == 0 ? NONE : reader.read(extraStart, (int) keptExtra);
            byte[] id = idLen == 0 ? NONE : reader.read(idStart, idLen);
            byte[] name = nameLen == 0 ? NONE : reader.read(idStart + idLen, nameLen);
            out.add(new Snapshot(Bytes.getLong(h, 0), Bytes.getInt(h, 8), id, name, Bytes.getUInt(h, 16),
                    Bytes.getUInt(h, 20), Bytes.getLong(h, 24), Bytes.getUInt(h, 32), extra));
            pos = entryEnd;
        }
        return new Contents(out, pos - offset, truncated, 0, repairs);
    }

    private static void requireInFile(long pos, long len, long fileLength, int index) throws CorruptImageException {
        if (pos + len > fileLength) {
            throw new CorruptImageException("Snapshot table entry " + index + " extends past the end of the file");
        }
    }

    /** Bytes {@link #encode} will produce for these snapshots. */
    public static long encodedLength(List<Snapshot> snapshots) {
        long len = 0;
        for (Snapshot s : snapshots) {
            len = Bytes.alignUp(len, 8);
            len += FIXED_ENTRY_SIZE + s.extraDataLength() + s.idLength() + s.nameLength();
        }
        return Bytes.alignUp(len, 8);
    }

    /** The table holding {@code snapshots}, ids and names as their bytes. */
    public static byte[] encode(List<Snapshot> snapshots) {
        byte[] b = new byte[(int) encodedLength(snapshots)];
        int pos = 0;
        for (Snapshot s : snapshots) {
            pos = (int) Bytes.alignUp(pos, 8);
            byte[] id = s.idBytes();
            byte[] name = s.nameBytes();
            byte[] extra = s.extraData();
            Bytes.putLong(b, pos, s.l1TableOffset());
            Bytes.putInt(b, pos + 8, s.l1Size());
            Bytes.putShort(b, pos + 12, id.length);
            Bytes.putShort(b, pos + 14, name.length);
            Bytes.putInt(b, pos + 16, (int) s.dateSec());
            Bytes.putInt(b, pos + 20, (int) s.dateNsec());
            Bytes.putLong(b, pos + 24, s.vmClockNsec());
            Bytes.putInt(b, pos + 32, (int) s.vmStateSize32());
            Bytes.putInt(b, pos + 36, extra.length);
            pos += FIXED_ENTRY_SIZE;
            System.arraycopy(extra, 0, b, pos, extra.length);
            pos += extra.length;
            System.arraycopy(id, 0, b, pos, id.length);
            pos += id.length;
            System.arraycopy(name, 0, b, pos, name.length);
            pos += name.length;
        }
        return b;
    }
}
