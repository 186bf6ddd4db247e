package io.github.qcowloom.image;

import static io.github.qcowloom.format.HeaderField.NB_SNAPSHOTS;
import static io.github.qcowloom.format.HeaderField.SNAPSHOTS_OFFSET;
import static io.github.qcowloom.image.ImagePoker.appendCluster;
import static io.github.qcowloom.image.ImagePoker.assertHeaderRejected;
import static io.github.qcowloom.image.ImagePoker.assertOpenFails;
import static io.github.qcowloom.image.ImagePoker.create;
import static io.github.qcowloom.image.ImagePoker.putInt;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static io.github.qcowloom.image.ImagePoker.putShort;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.snapshot.Snapshot;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The snapshot table: CVE-2014-0144 "Validate snapshot table offset/size" (nb_snapshots ≤ 65536, aligned offset
 * inside the file), 2014 "Limit snapshot table size" (64 MiB in all, extra data ≤ 1024 bytes per entry; iotest
 * 261), and entries that run past the end of the file (qcow2.md §1, §7).
 */
class BadImageSnapshotTest {
    private static final long CLUSTER = 65536;
    /** Offsets inside one table entry (QCowSnapshotHeader). */
    private static final int ID_LEN = 12;
    private static final int NAME_LEN = 14;
    private static final int EXTRA_DATA_SIZE = 36;

    @TempDir
    Path dir;

    /** A valid image with one snapshot "s1" in a table at the end of the file; returns the table's offset. */
    private long addSnapshotTable(Path image, Snapshot... snapshots) throws IOException {
        long offset = appendCluster(image, SnapshotTable.encode(List.of(snapshots)));
        putInt(image, NB_SNAPSHOTS, snapshots.length);
        putLong(image, SNAPSHOTS_OFFSET, offset);
        return offset;
    }

    private static Snapshot snapshot(String id, String name, byte[] extra) {
        return new Snapshot(3 * CLUSTER, 1, id, name, 1700000000, 5, 42, 0, extra);
    }

    private Path image() throws IOException {
        return create(dir.resolve("bad.qcow2"));
    }

    // The valid table the pokes below start from is read back exactly.
    @Test
    void validSnapshotTableIsRead() throws IOException {
        Path image = image();
        Snapshot s1 = snapshot("1", "s1", Snapshot.extraData(0, 1 << 20, -1));
        Snapshot s2 = snapshot("2", "zwei Schnappschüsse", new byte[0]);
        addSnapshotTable(image, s1, s2);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertEquals(List.of(s1, s2), img.snapshots());
        }
    }

    // QCOW_MAX_SNAPSHOTS: "Too many snapshots" (EINVAL in QEMU).
    @ParameterizedTest
    @ValueSource(ints = {65537, 0x7fffffff, -1})
    void moreThan65536SnapshotsAreRejected(int count) throws IOException {
        Path image = image();
        addSnapshotTable(image, snapshot("1", "s1", new byte[24]));
        putInt(image, NB_SNAPSHOTS, count);
        assertHeaderRejected(image, CorruptImageException.class, "Too many snapshots");
    }

    // qcow2_validate_table on the snapshot table: misaligned offset is "Snapshot table offset invalid".
    @ParameterizedTest
    @ValueSource(ints = {1, 0})
    void misalignedSnapshotTableOffsetIsInvalid(int count) throws IOException {
        Path image = image();
        long offset = addSnapshotTable(image, snapshot("1", "s1", new byte[24]));
        putInt(image, NB_SNAPSHOTS, count);
        putLong(image, SNAPSHOTS_OFFSET, offset + 8);
        // QEMU checks the offset even with no snapshots (observed with qemu-img 7.2).
        assertHeaderRejected(image, CorruptImageException.class, "Snapshot table offset invalid");
    }

    @Test
    void snapshotTableAtOffsetZeroIsInvalid() throws IOException {
        Path image = image();
        addSnapshotTable(image, snapshot("1", "s1", new byte[24]));
        putLong(image, SNAPSHOTS_OFFSET, 0);
        assertHeaderRejected(image, CorruptImageException.class, "Snapshot table offset invalid: 0");
    }

    @Test
    void snapshotTableOffsetOverflowingInt64IsInvalid() throws IOException {
        Path image = image();
        addSnapshotTable(image, snapshot("1", "s1", new byte[24]));
        putLong(image, SNAPSHOTS_OFFSET, 0xffffffffffff0000L);
        assertHeaderRejected(image, CorruptImageException.class, "Snapshot table offset invalid");
    }

    @Test
    void snapshotTablePastEndOfFileIsRejected() throws IOException {
        Path image = image();
        addSnapshotTable(image, snapshot("1", "s1", new byte[24]));
        putLong(image, SNAPSHOTS_OFFSET, 100 * CLUSTER);
        assertHeaderRejected(image, CorruptImageException.class,
                "Snapshot table at offset 0x640000 (40 bytes) extends past the end of the file");
    }

    // 65536 fixed entry parts alone (2.5 MiB) do not fit in this small file.
    @Test
    void snapshotCountWhoseFixedPartsOverrunTheFileIsRejected() throws IOException {
        Path image = image();
        addSnapshotTable(image, snapshot("1", "s1", new byte[24]));
        putInt(image, NB_SNAPSHOTS, 65536);
        assertHeaderRejected(image, CorruptImageException.class, "Snapshot table at offset");
    }

    // QCOW_MAX_SNAPSHOT_EXTRA_DATA: "Too much extra metadata in snapshot table entry %i" (EFBIG).
    @ParameterizedTest
    @ValueSource(ints = {1025, 65536, -1})
    void extraDataAbove1024BytesIsTooLarge(int size) throws IOException {
        Path image = image();
        long table = addSnapshotTable(image, snapshot("1", "s1", new byte[24]));
        putInt(image, table + EXTRA_DATA_SIZE, size);
        ImagePoker.header(image); // the header itself is fine: the entry is checked when the table is read
        assertOpenFails(image, ImageTooLargeException.class, "Too much extra metadata in snapshot table entry 0");
    }

    @Test
    void extraDataOfExactly1024BytesIsAccepted() throws IOException {
        Path image = image();
        Snapshot s = snapshot("1", "s1", new byte[1024]);
        addSnapshotTable(image, s);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertEquals(List.of(s), img.snapshots());
        }
    }

    // An entry's id and name must lie in the file; they are not read past its end.
    @Test
    void entryWhoseIdRunsPastEndOfFileIsRejected() throws IOException {
        Path image = image();
        long table = addSnapshotTable(image, snapshot("1", "s1", new byte[24]));
        assertEquals(table + CLUSTER, Files.size(image));
        putShort(image, table + ID_LEN, 65535);
        assertOpenFails(image, CorruptImageException.class,
                "Snapshot table entry 0 extends past the end of the file");
    }

    // The second entry's fixed part starts past the end of the file.
    @Test
    void secondEntryPastEndOfFileIsRejected() throws IOException {
        Path image = image();
        long table = addSnapshotTable(image, snapshot("1", "s1", new byte[24]));
        putShort(image, table + NAME_LEN, 65450); // entry 0 ends at 65515, entry 1 at 65520 + 40
        putInt(image, NB_SNAPSHOTS, 2);
        assertOpenFails(image, CorruptImageException.class,
                "Snapshot table entry 1 extends past the end of the file");
    }

    /**
     * QCOW_MAX_SNAPSHOTS_SIZE: the whole table may take at most 64 MiB. Entries with 64 KiB ids and names (each
     * 131112 bytes with padding) cross that limit at entry 511; the file is sparse, so only the 40-byte fixed
     * parts are written.
     */
    @Test
    void snapshotTableLargerThan64MiBIsTooLarge() throws IOException {
        Path image = image();
        long table = Bytes.alignUp(Files.size(image), CLUSTER);
        int entry = (int) Bytes.alignUp(40 + 65535 + 65535, 8);
        int count = 520;
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(table + (long) count * entry + CLUSTER);
            byte[] fixed = new byte[40];
            Bytes.putLong(fixed, 0, 3 * CLUSTER);
            Bytes.putInt(fixed, 8, 1);
            Bytes.putShort(fixed, ID_LEN, 65535);
            Bytes.putShort(fixed, NAME_LEN, 65535);
            for (int i = 0; i < count; i++) {
                f.seek(table + (long) i * entry);
                f.write(fixed);
            }
        }
        putInt(image, NB_SNAPSHOTS, count);
        putLong(image, SNAPSHOTS_OFFSET, table);
        Header h = ImagePoker.header(image);
        assertEquals(count, h.nbSnapshots());
        assertOpenFails(image, ImageTooLargeException.class, "Snapshot table is too big");
    }
}
