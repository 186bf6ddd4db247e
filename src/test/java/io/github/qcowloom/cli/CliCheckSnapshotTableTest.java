package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.QemuCheckComparison.assertRepairSameAsQemu;
import static io.github.qcowloom.cli.QemuCheckComparison.compare;
import static io.github.qcowloom.cli.QemuCheckComparison.copy;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.cli.QemuCheckComparison.Compared;
import io.github.qcowloom.cli.QemuCheckComparison.Repaired;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.Qemu;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Damaged snapshot tables in check and repair: the cases of QEMU's iotest 261, and snapshot L1 tables and table
 * pointers that are invalid. Each image is made with qemu-img and poked; then a plain check, -r leaks and -r all
 * (each on its own copies for qemu-img and for us) give the same JSON, exit codes and snapshot-table lines as
 * qemu-img check, both tools judge our repaired copy alike, and its snapshot table holds what qemu-img's does.
 */
class CliCheckSnapshotTableTest {
    private static final long MIB = 1 << 20;
    private static final long CLUSTER = 65536;
    /** Header fields. */
    private static final int VERSION = HeaderField.VERSION.offset();
    private static final int REFCOUNT_ORDER = HeaderField.REFCOUNT_ORDER.offset();
    private static final int HEADER_LENGTH = HeaderField.HEADER_LENGTH.offset();
    private static final int NB_SNAPSHOTS = HeaderField.NB_SNAPSHOTS.offset();
    private static final int SNAPSHOTS_OFFSET = HeaderField.SNAPSHOTS_OFFSET.offset();
    /** Fields of a snapshot table entry. */
    private static final int L1_OFFSET = 0;
    private static final int L1_SIZE = 8;
    private static final int ID_LEN = 12;
    private static final int NAME_LEN = 14;
    private static final int EXTRA_SIZE = 36;
    private static final byte[] IMPORTANT = "very important data".getBytes(StandardCharsets.US_ASCII);

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    // iotest 261 "Create v2 template": no extra data, unknown extra data and an 8-byte one are all valid in v2.
    @Test
    void v2EntriesWithShortOrUnknownExtraDataAreClean() throws IOException {
        Path img = v2Template();
        Repaired all = assertAgreesWithQemu(img, false);
        assertSameListing(all);
        assertEquals(List.of(0, 50, 8), table(all.ours()).stream().map(s -> s.extraData().length).toList());
    }

    // iotest 261 "Upgrade to v3": qemu-img amend completes the entries; unknown extra data survives.
    @Test
    void amendedV3TemplateIsClean() throws IOException {
        Path img = v3Template();
        assertAgreesWithQemu(img, false);
        assertImportantDataKept(table(img));
    }

    // iotest 261 "Repair botched v3": v3 entries need 16 bytes of extra data; -r all writes the table anew.
    @Test
    void incompleteV3EntriesAreCompletedByRepairAll() throws IOException {
        Path img = copyOf(v2Template(), "botched.qcow2");
        pokeInt(img, VERSION, 3);
        pokeInt(img, HEADER_LENGTH, 104);
        pokeInt(img, REFCOUNT_ORDER, 4);
        Repaired all = assertAgreesWithQemu(img, false);
        assertTrue(all.ourErr().contains("Repairing snapshot table entry 2 is incomplete"), all.ourErr());
        assertSameListing(all);
        List<Snapshot> repaired = table(all.ours());
        assertEquals(table(all.qemu()), repaired);
        assertEquals(List.of(24, 50, 24), repaired.stream().map(s -> s.extraData().length).toList());
        assertImportantDataKept(repaired);
    }

    // iotest 261 "Reject too much unknown extra data": check fails; -r all cuts it to 1024 bytes. The 64 KiB also
    // reach into a cluster with refcount 0, which qemu-img fixes by rebuilding the refcount structures.
    @Test
    void tooMuchExtraDataFailsTheCheckAndIsCutByRepairAll() throws IOException {
        Path img = copyOf(v3Template(), "extra.qcow2");
        Qemu.img("snapshot", "-c", "sn3", img.toString());
        pokeInt(img, entryOffset(img, 3) + EXTRA_SIZE, 65536);
        Repaired all = assertAgreesWithQemu(img, true);
        assertSameListing(all);
        List<Snapshot> repaired = table(all.ours());
        assertEquals(table(all.qemu()), repaired);
        assertEquals(1024, repaired.get(3).extraData().length);
    }

    // iotest 261 "Snapshot table too big": 1 KiB of extra data, a 64 KiB id and name per entry, 508 entries pass
    // 64 MiB; -r all drops the last one (whose L1 and L2 tables then leak) by writing the shorter count.
    @Test
    void snapshotTableOver64MiBLosesItsOverhangingEntry() throws IOException {
        Path img = tooBigTable();
        Repaired all = assertAgreesWithQemu(img, false);
        assertEquals(507, Integer.toUnsignedLong(header(all.ours()).nbSnapshots()));
        assertEquals(table(all.qemu()), table(all.ours()));
    }

    // iotest 261 "Snapshot table too big with one entry with too much extra data": cutting that extra data brings
    // all but the last entry under 64 MiB again; -r all drops the last and writes the whole table anew.
    @Test
    void extraDataCutBeforeTheOverhangIsMeasured() throws IOException {
        int before = 505;
        long entry = fullEntrySize();
        // Extra data that makes entry 506 end 8 bytes past 64 MiB while it is stored, and fit once cut to 1 KiB.
        long extra = 64 * MIB + 8 - entry - (before + 1) * entry + 1024;
        Path img = dir.resolve("toobig-extra.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "64M");
        long end;
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            long pos = MIB;
            for (int i = 0; i < before + 3; i++) {
                byte[] fixed = fullEntryFixedPart();
                if (i == before) {
                    Bytes.putInt(fixed, EXTRA_SIZE, (int) extra);
                }
                f.seek(pos);
                f.write(fixed);
                pos += i == before ? entry - 1024 + extra : entry;
            }
            end = pos;
            f.setLength(end);
        }
        pokeLong(img, SNAPSHOTS_OFFSET, MIB);
        pokeInt(img, NB_SNAPSHOTS, before + 3);
        refblock0Allocate(img, MIB, end);
        Repaired all = assertAgreesWithQemu(img, false);
        assertTrue(all.ourErr().contains("Discarding too much extra metadata in snapshot table entry 505 (116944 > "
                + "1024)"), all.ourErr());
        assertEquals(table(all.qemu()), table(all.ours()));
    }

    // iotest 261 "Too many snapshots": 131072 all-zero v2 entries; -r all keeps 65536 (the others, and the L1 and
    // L2 tables of one of them, leak).
    @Test
    void snapshotsPast65536AreDroppedByRepairAll() throws IOException {
        Path img = dir.resolve("toomany.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", img.toString(), "64M");
        pokeLong(img, SNAPSHOTS_OFFSET, MIB);
        pokeInt(img, NB_SNAPSHOTS, 131072);
        long end = MIB + 40 * 131072;
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(end);
        }
        hookL1AndL2(img, MIB + 40 * 65536);
        refblock0Allocate(img, MIB - 2 * CLUSTER, end);
        Repaired all = assertAgreesWithQemu(img, false);
        assertEquals(65536, header(all.ours()).nbSnapshots());
        assertEquals(table(all.qemu()), table(all.ours()));
    }

    // A snapshot's L1 table misaligned or past QEMU's 32 MiB: a corruption, and QEMU 7.2's -r all keeps the entry.
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"misaligned", "0x400001", "0xffffffff"})
    void badSnapshotL1TableIsCountedNotDropped(String what) throws IOException {
        Path img = copyOf(v3Template(), "l1-" + what + ".qcow2");
        long sn1 = entryOffset(img, 1);
        if (what.equals("misaligned")) {
            pokeLong(img, sn1 + L1_OFFSET, peekLong(img, sn1 + L1_OFFSET) + 512);
        } else {
            pokeInt(img, sn1 + L1_SIZE, (int) Long.decode(what).longValue());
        }
        Repaired all = assertAgreesWithQemu(img, false);
        assertTrue(all.ourErr().contains("ERROR snapshot 2 (sn1) l1_"), all.ourErr());
        assertSameListing(all);
    }

    // qcow2_validate_table in the check: a misaligned table offset fails it (EINVAL), repair or not.
    @Test
    void misalignedSnapshotTableOffsetFailsTheCheck() throws IOException {
        Path img = copyOf(v3Template(), "tabalign.qcow2");
        pokeLong(img, SNAPSHOTS_OFFSET, peekLong(img, SNAPSHOTS_OFFSET) + 8);
        assertAgreesWithQemu(img, false);
    }

    // A table past the end of the file reads as zeros, as qemu-img's check reads it: three incomplete v3 entries
    // and a reference past the end; -r all writes them anew inside the file.
    @Test
    void snapshotTablePastEndOfFileReadsAsZeros() throws IOException {
        Path img = copyOf(v3Template(), "tabeof.qcow2");
        pokeLong(img, SNAPSHOTS_OFFSET, 256 * CLUSTER);
        Repaired all = assertAgreesWithQemu(img, false);
        assertSameListing(all);
        assertEquals(table(all.qemu()), table(all.ours()));
    }

    /**
     * A plain check, -r leaks and -r all agree with qemu-img's (JSON, exit code, the lines about the snapshot
     * table; a failed check's whole stderr); returns the -r all copies.
     */
    private Repaired assertAgreesWithQemu(Path img, boolean qemuRebuildsOnRepairAll) throws IOException {
        Compared plain = compare(img);
        assertSameLines(plain.qemu().stdout().isEmpty(), plain.qemu().stderr(), plain.ours().err());
        Repaired leaks = assertRepairSameAsQemu(dir, img, "leaks", false);
        assertSameLines(false, leaks.qemuErr(), leaks.ourErr());
        Repaired all = assertRepairSameAsQemu(dir, img, "all", qemuRebuildsOnRepairAll);
        assertSameLines(false, all.qemuErr(), all.ourErr());
        return all;
    }

    /**
     * Both tools printed the same lines on stderr, without program names: all of them for a {@code failed} check
     * (which prints only what it found before it stopped), else those about snapshots (the refcount lines of a
     * repair differ where qemu-img rebuilds).
     */
    private static void assertSameLines(boolean failed, String qemu, String ours) {
        assertEquals(lines(qemu, !failed), lines(ours, !failed), () -> "qemu-img:\n" + qemu + "\nours:\n" + ours);
    }

    private static List<String> lines(String stderr, boolean onlySnapshotLines) {
        return stderr.lines().map(l -> l.replaceFirst("^(qemu-img|qcow2-loom): ", ""))
                .filter(l -> !onlySnapshotLines || l.toLowerCase(Locale.ROOT).contains("snapshot")).toList();
    }

    /** qemu-img snapshot -l lists the same snapshots in our repaired copy as in its own. */
    private static void assertSameListing(Repaired r) {
        assertEquals(Qemu.img("snapshot", "-l", r.qemu().toString()), Qemu.img("snapshot", "-l", r.ours().toString()));
    }

    private static void assertImportantDataKept(List<Snapshot> table) {
        byte[] extra = table.get(1).extraData();
        assertEquals(50, extra.length);
        assertArrayEquals(IMPORTANT, Arrays.copyOfRange(extra, 24, 24 + IMPORTANT.length));
    }

    /**
     * iotest 261's v2 template: three snapshots whose extra data is none, 50 bytes (QEMU's 24 and then data
     * unknown to it) and 8 bytes (the 64-bit vm-state size only).
     */
    private Path v2Template() throws IOException {
        Path img = dir.resolve("v2.qcow2");
        if (img.toFile().exists()) {
            return img;
        }
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", img.toString(), "64M");
        for (String name : List.of("sn0", "sn1", "sn2")) {
            Qemu.img("snapshot", "-c", name, img.toString());
        }
        long table = peekLong(img, SNAPSHOTS_OFFSET);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        long pos = table;
        for (int i = 0; i < 3; i++) {
            byte[] fixed = read(img, pos, 40);
            int extraSize = Bytes.getInt(fixed, EXTRA_SIZE);
            int namesSize = Bytes.getUShort(fixed, ID_LEN) + Bytes.getUShort(fixed, NAME_LEN);
            byte[] extra = read(img, pos + 40, extraSize);
            byte[] names = read(img, pos + 40 + extraSize, namesSize);
            pos += Bytes.alignUp(40 + extraSize + namesSize, 8);
            byte[] changed = Arrays.copyOf(extra, new int[] {0, 50, 8}[i]);
            if (i == 1) {
                System.arraycopy(IMPORTANT, 0, changed, 24, IMPORTANT.length);
            }
            Bytes.putInt(fixed, EXTRA_SIZE, changed.length);
            out.write(fixed);
            out.write(changed);
            out.write(names);
            out.write(new byte[(int) (Bytes.alignUp(out.size(), 8) - out.size())]);
        }
        write(img, table, out.toByteArray());
        return img;
    }

    /** The v2 template after qemu-img amend -o compat=1.1. */
    private Path v3Template() throws IOException {
        Path img = dir.resolve("v3.qcow2");
        if (!img.toFile().exists()) {
            copy(v2Template(), img);
            Qemu.img("amend", "-o", "compat=1.1", img.toString());
        }
        return img;
    }

    /** Fixed part plus 1 KiB of extra data, a 65535-byte id and name, padded: iotest 261's largest entry. */
    private static long fullEntrySize() {
        return Bytes.alignUp(40 + 1024 + 65535 + 65535, 8);
    }

    private static byte[] fullEntryFixedPart() {
        byte[] fixed = new byte[40];
        Bytes.putShort(fixed, ID_LEN, 65535);
        Bytes.putShort(fixed, NAME_LEN, 65535);
        Bytes.putInt(fixed, EXTRA_SIZE, 1024);
        return fixed;
    }

    /** iotest 261's table just over 64 MiB at 1 MiB; its last entry has an L1 and an L2 table. */
    private Path tooBigTable() throws IOException {
        Path img = dir.resolve("toobig.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "64M");
        long entry = fullEntrySize();
        long pos = MIB;
        int count = 0;
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            for (long written = 0; written <= 64 * MIB; written += entry, count++) {
                f.seek(pos);
                f.write(fullEntryFixedPart());
                pos += entry;
            }
            f.setLength(pos);
        }
        pokeLong(img, SNAPSHOTS_OFFSET, MIB);
        pokeInt(img, NB_SNAPSHOTS, count);
        hookL1AndL2(img, pos - entry);
        refblock0Allocate(img, MIB - 2 * CLUSTER, pos);
        return img;
    }

    /** Gives the entry at {@code entry} a one-entry L1 table two clusters below 1 MiB and an L2 table after it. */
    private static void hookL1AndL2(Path img, long entry) throws IOException {
        pokeLong(img, entry + L1_OFFSET, MIB - 2 * CLUSTER);
        pokeInt(img, entry + L1_SIZE, 1);
        pokeLong(img, MIB - 2 * CLUSTER, (1L << 63) | (MIB - CLUSTER));
    }

    /** Sets the refcount of every cluster of [start, end) to 1, in the first refblock (16-bit refcounts). */
    private static void refblock0Allocate(Path img, long start, long end) throws IOException {
        long refblock = peekLong(img, peekLong(img, 48));
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            for (long c = start / CLUSTER; c < (end + CLUSTER - 1) / CLUSTER; c++) {
                f.seek(refblock + 2 * c);
                f.writeShort(1);
            }
        }
    }

    /** Offset of entry {@code index} of the snapshot table. */
    private static long entryOffset(Path img, int index) throws IOException {
        long pos = peekLong(img, SNAPSHOTS_OFFSET);
        for (int i = 0; i < index; i++) {
            byte[] fixed = read(img, pos, 40);
            pos += Bytes.alignUp(40 + Bytes.getInt(fixed, EXTRA_SIZE) + Bytes.getUShort(fixed, ID_LEN)
                    + Bytes.getUShort(fixed, NAME_LEN), 8);
        }
        return pos;
    }

    private static Header header(Path img) throws IOException {
        try (FileStorage f = FileStorage.open(img, true, false)) {
            return ImageMetadata.readHeader(f);
        }
    }

    /** The snapshot table as the open reads it (strictly). */
    private static List<Snapshot> table(Path img) throws IOException {
        try (FileStorage f = FileStorage.open(img, true, false)) {
            return ImageMetadata.readSnapshots(f, ImageMetadata.readHeader(f));
        }
    }

    private Path copyOf(Path img, String name) throws IOException {
        Path to = dir.resolve(name);
        copy(img, to);
        return to;
    }

    private static byte[] read(Path img, long offset, int length) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            byte[] b = new byte[length];
            f.seek(offset);
            f.readFully(b);
            return b;
        }
    }

    private static void write(Path img, long offset, byte[] data) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(offset);
            f.write(data);
        }
    }

    private static long peekLong(Path img, long offset) throws IOException {
        return Bytes.getLong(read(img, offset, 8), 0);
    }

    private static void pokeLong(Path img, long offset, long value) throws IOException {
        byte[] b = new byte[8];
        Bytes.putLong(b, 0, value);
        write(img, offset, b);
    }

    private static void pokeInt(Path img, long offset, int value) throws IOException {
        byte[] b = new byte[4];
        Bytes.putInt(b, 0, value);
        write(img, offset, b);
    }
}
