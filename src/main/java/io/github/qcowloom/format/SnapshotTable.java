package io.github.qcowloom.format;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageTooLargeException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Codec of the snapshot table: variable-length entries, each padded to 8 bytes (QEMU's qcow2_read_snapshots). */
public final class SnapshotTable {
    private SnapshotTable() {
    }

    /** Fixed part of an entry (QCowSnapshotHeader). */
    public static final int FIXED_ENTRY_SIZE = 40;

    /**
     * Reads {@code count} entries starting at {@code offset}. Every length field is checked against QEMU's limits
     * and the file length before it is used.
     */
    public static List<Snapshot> parse(RangeReader reader, long offset, int count, long fileLength)
            throws IOException {
        List<Snapshot> out = new ArrayList<>(Math.min(count, 1024));
        long pos = offset;
        for (int i = 0; i < count; i++) {
            pos = Bytes.alignUp(pos, 8);
            requireInFile(pos, FIXED_ENTRY_SIZE, fileLength, i);
            byte[] h = reader.read(pos, FIXED_ENTRY_SIZE);
            long l1Offset = Bytes.getLong(h, 0);
            long l1Size = Bytes.getUInt(h, 8);
            int idLen = Bytes.getUShort(h, 12);
            int nameLen = Bytes.getUShort(h, 14);
            long dateSec = Bytes.getUInt(h, 16);
            long dateNsec = Bytes.getUInt(h, 20);
            long vmClock = Bytes.getLong(h, 24);
            long vmState = Bytes.getUInt(h, 32);
            long extraSize = Bytes.getUInt(h, 36);
            if (extraSize > Limits.MAX_SNAPSHOT_EXTRA_DATA) {
                throw new ImageTooLargeException("Too much extra metadata in snapshot table entry " + i + " ("
                        + extraSize + " bytes)");
            }
            if (l1Size > Integer.MAX_VALUE) {
                throw new ImageTooLargeException("Snapshot L1 table too large in snapshot table entry " + i);
            }
            pos += FIXED_ENTRY_SIZE;
            int varLen = (int) extraSize + idLen + nameLen;
            if (pos + varLen - offset > Limits.MAX_SNAPSHOT_TABLE_BYTES) {
                throw new ImageTooLargeException("Snapshot table is too big");
            }
            requireInFile(pos, varLen, fileLength, i);
            byte[] v = varLen == 0 ? new byte[0] : reader.read(pos, varLen);
            byte[] extra = new byte[(int) extraSize];
            System.arraycopy(v, 0, extra, 0, extra.length);
            String id = new String(v, (int) extraSize, idLen, StandardCharsets.UTF_8);
            String name = new String(v, (int) extraSize + idLen, nameLen, StandardCharsets.UTF_8);
            pos += varLen;
            out.add(new Snapshot(l1Offset, (int) l1Size, id, name, dateSec, dateNsec, vmClock, vmState, extra));
        }
        if (Bytes.alignUp(pos, 8) - offset > Limits.MAX_SNAPSHOT_TABLE_BYTES) {
            throw new ImageTooLargeException("Snapshot table is too big");
        }
        return out;
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
            len += FIXED_ENTRY_SIZE + s.extraData().length + utf8(s.id()).length + utf8(s.name()).length;
        }
        return Bytes.alignUp(len, 8);
    }

    public static byte[] encode(List<Snapshot> snapshots) {
        byte[] b = new byte[(int) encodedLength(snapshots)];
        int pos = 0;
        for (Snapshot s : snapshots) {
            pos = (int) Bytes.alignUp(pos, 8);
            byte[] id = utf8(s.id());
            byte[] name = utf8(s.name());
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

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
