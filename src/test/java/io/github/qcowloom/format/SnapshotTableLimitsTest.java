package io.github.qcowloom.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.snapshot.Snapshot;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link SnapshotTable#parse} against QEMU's qcow2_read_snapshots limits on a synthetic file that is never
 * materialised: "Snapshot table is too big" (64 MiB, 2014 "Limit snapshot table size"), "Too much extra metadata"
 * (1024 bytes per entry) and entries past the end of the file. The reader records what is asked of it, so the
 * tests also show that nothing past the limits is read.
 */
class SnapshotTableLimitsTest {
    private static final long TABLE = 1L << 20;

    /** A file whose snapshot table at {@link #TABLE} holds {@code count} identical entries of the given sizes. */
    private static final class SyntheticTable implements RangeReader {
        final int idLen;
        final int nameLen;
        final int extra;
        final long entrySize;
        long furthestRead;
        long bytesRead;

        SyntheticTable(int idLen, int nameLen, int extra) {
            this.idLen = idLen;
            this.nameLen = nameLen;
            this.extra = extra;
            this.entrySize = Bytes.alignUp(40 + extra + idLen + nameLen, 8);
        }

        @Override
        public byte[] read(long offset, int length) {
            furthestRead = Math.max(furthestRead, offset + length);
            bytesRead += length;
            byte[] b = new byte[length];
            if (length == SnapshotTable.FIXED_ENTRY_SIZE && (offset - TABLE) % entrySize == 0) {
                Bytes.putLong(b, 0, 1L << 16);
                Bytes.putInt(b, 8, 16);
                Bytes.putShort(b, 12, idLen);
                Bytes.putShort(b, 14, nameLen);
                Bytes.putInt(b, 36, extra);
            }
            return b;
        }
    }

    // 64 KiB ids and names: the 512th entry (index 511) would end past 64 MiB.
    @Test
    void tableLargerThan64MiBIsTooBig() {
        SyntheticTable file = new SyntheticTable(65535, 65535, 0);
        ImageTooLargeException e = assertThrows(ImageTooLargeException.class,
                () -> SnapshotTable.parse(file, TABLE, 65536, 1L << 40));
        // Entries of 131112 bytes: entry 511 is the first to end past 64 MiB, so 65025 overhang.
        assertEquals("Snapshot table is too big\nYou can force-remove all 65025 overhanging snapshots with qemu-img"
                + " check -r all", e.getMessage());
        assertTrue(file.furthestRead - TABLE <= Limits.MAX_SNAPSHOT_TABLE_BYTES,
                "read up to " + (file.furthestRead - TABLE) + " bytes into the table");
    }

    // Entries that fit exactly are accepted right up to the limit.
    @Test
    void tableOfExactly64MiBIsAccepted() throws IOException {
        // 40 + 492 + 492 = 1024 bytes per entry, and 65536 of them make exactly 64 MiB.
        SyntheticTable file = new SyntheticTable(492, 492, 0);
        List<Snapshot> all = SnapshotTable.parse(file, TABLE, 65536, 1L << 40);
        assertEquals(65536, all.size());
        assertEquals(Limits.MAX_SNAPSHOT_TABLE_BYTES, file.furthestRead - TABLE);
    }

    @Test
    void extraDataAbove1024BytesIsTooLarge() {
        SyntheticTable file = new SyntheticTable(1, 1, 1025);
        ImageTooLargeException e = assertThrows(ImageTooLargeException.class,
                () -> SnapshotTable.parse(file, TABLE, 3, 1L << 40));
        assertEquals("Too much extra metadata in snapshot table entry 0\nYou can force-remove this extra metadata"
                + " with qemu-img check -r all", e.getMessage());
        assertEquals(SnapshotTable.FIXED_ENTRY_SIZE, file.bytesRead, "only the fixed part was read");
    }

    @Test
    void extraDataOf1024BytesIsKept() throws IOException {
        SyntheticTable file = new SyntheticTable(1, 1, 1024);
        List<Snapshot> all = SnapshotTable.parse(file, TABLE, 2, 1L << 40);
        assertEquals(1024, all.get(1).extraData().length);
    }

    // Every entry, fixed part and variable part, must lie in the file before it is read.
    @Test
    void entryRunningPastEndOfFileIsRejectedBeforeItIsRead() {
        SyntheticTable file = new SyntheticTable(65535, 10, 0);
        long fileLength = TABLE + 40 + 1000;
        CorruptImageException e = assertThrows(CorruptImageException.class,
                () -> SnapshotTable.parse(file, TABLE, 1, fileLength));
        assertEquals("Snapshot table entry 0 extends past the end of the file", e.getMessage());
        assertTrue(file.furthestRead <= fileLength, "read up to " + file.furthestRead);
    }

    @Test
    void fixedPartPastEndOfFileIsRejectedBeforeItIsRead() {
        SyntheticTable file = new SyntheticTable(4, 4, 0);
        long fileLength = TABLE + file.entrySize * 3 + 20;
        CorruptImageException e = assertThrows(CorruptImageException.class,
                () -> SnapshotTable.parse(file, TABLE, 4, fileLength));
        assertEquals("Snapshot table entry 3 extends past the end of the file", e.getMessage());
        assertTrue(file.furthestRead <= fileLength, "read up to " + file.furthestRead);
    }

    // qemu-img check -r all: extra data past 1024 bytes is cut (and not read), the table keeps its stored size.
    @Test
    void repairingReadCutsExtraDataTo1024Bytes() throws IOException {
        SyntheticTable file = new SyntheticTable(1, 1, 4096);
        SnapshotTable.Contents c = SnapshotTable.read(file, TABLE, 2, 1L << 40, true);
        assertEquals(List.of(1024, 1024), c.snapshots().stream().map(s -> s.extraData().length).toList());
        assertEquals(2, c.extraDataTruncated());
        assertEquals(0, c.overhanging());
        assertEquals(file.entrySize + 40 + 4096 + 2, c.size());
        assertEquals(List.of("Discarding too much extra metadata in snapshot table entry 0 (4096 > 1024)",
                "Discarding too much extra metadata in snapshot table entry 1 (4096 > 1024)"), c.repairs());
        assertTrue(file.bytesRead <= 2 * (40 + 1024 + 2), "read " + file.bytesRead + " bytes");
    }

    // qemu-img check -r all: the entry that ends past 64 MiB is dropped with all after it, and nothing of it read.
    @Test
    void repairingReadDropsEntriesPast64MiB() throws IOException {
        SyntheticTable file = new SyntheticTable(65535, 65535, 0);
        SnapshotTable.Contents c = SnapshotTable.read(file, TABLE, 600, 1L << 40, true);
        assertEquals(511, c.snapshots().size());
        assertEquals(89, c.overhanging());
        // The kept entries end with entry 510, unpadded.
        assertEquals(510 * file.entrySize + 40 + 65535 + 65535, c.size());
        assertEquals(List.of("Discarding 89 overhanging snapshots (snapshot table is too big)"), c.repairs());
        assertTrue(file.furthestRead - TABLE <= Limits.MAX_SNAPSHOT_TABLE_BYTES);
    }

    // The 64 MiB limit counts kept bytes, but a stored table past 2 GiB is cut as well (QEMU's INT_MAX test).
    @Test
    void storedTablePast2GiBIsCutEvenUnder64MiBKept() throws IOException {
        // Entries of 1 MiB + 40 bytes stored, 1064 bytes kept: the 2048th ends past 2 GiB.
        SyntheticTable file = new SyntheticTable(0, 0, 1 << 20);
        SnapshotTable.Contents c = SnapshotTable.read(file, TABLE, 60000, 1L << 40, true);
        assertEquals(2047, c.snapshots().size());
        assertEquals(60000 - 2047, c.overhanging());
    }

    // Ids and names that are not valid UTF-8 are decoded with replacement characters, not rejected.
    @Test
    void invalidUtf8InNamesIsReplacedNotFatal() throws IOException {
        byte[] table = SnapshotTable.encode(List.of(new Snapshot(65536, 1, "ab", "cd", 0, 0, 0, 0, new byte[0])));
        table[40] = (byte) 0xff;
        table[43] = (byte) 0xc3;
        List<Snapshot> out = SnapshotTable.parse(
                (off, len) -> Arrays.copyOfRange(table, (int) off, (int) off + len), 0, 1, table.length);
        assertEquals("\ufffdb", out.get(0).id());
        assertEquals("c\ufffd", out.get(0).name());
    }
}
