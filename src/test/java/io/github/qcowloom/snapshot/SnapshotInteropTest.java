package io.github.qcowloom.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.RefcountOverflowException;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Internal snapshots against the real qemu-img 7.2: snapshots we create are listed, read and applied by qemu-img
 * with the data we wrote at that point; snapshots qemu-img creates are listed, applied and deleted by us; qemu-img
 * check is clean after every step.
 */
class SnapshotInteropTest {
    private static final int SIZE = (3 << 20) + 4096;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    static Stream<CreateOptions> layouts() {
        return Stream.of(CreateOptions.defaults(SIZE),
                CreateOptions.defaults(SIZE).withClusterSize(4096).withRefcountBits(4),
                CreateOptions.defaults(SIZE).withVersion(2).withClusterSize(512),
                CreateOptions.defaults(SIZE).withLazyRefcounts(true).withClusterSize(16384));
    }

    @ParameterizedTest
    @MethodSource("layouts")
    void ourSnapshotsAreListedReadAndAppliedByQemu(CreateOptions layout) throws IOException {
        Path image = dir.resolve("ours.qcow2");
        ImageCreator.create(image, layout);
        byte[] model = new byte[SIZE];
        List<byte[]> atSnapshot = new ArrayList<>();
        Instant date = Instant.parse("2024-05-06T07:08:09.123456789Z");
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            for (int round = 0; round < 3; round++) {
                randomWrites(img, model, round, 25);
                Snapshot s = Snapshots.create(img, "snap " + round, date.plusSeconds(round));
                assertEquals(String.valueOf(round + 1), s.id());
                assertEquals(123456000, s.dateNsec(), "QEMU dates snapshots to the microsecond");
                atSnapshot.add(model.clone());
            }
            randomWrites(img, model, 99, 25);
            img.discard(0, 1 << 20);
            Arrays.fill(model, 0, 1 << 20, (byte) 0);
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)));
        }
        assertClean(image);
        assertEquals(-1, Images.firstDifference(model, Qemu.toRaw(image, dir)));
        List<Map<String, Object>> listed = QemuSnapshots.info(image);
        assertEquals(3, listed.size());
        for (int i = 0; i < 3; i++) {
            assertEquals(String.valueOf(i + 1), listed.get(i).get("id"));
            assertEquals("snap " + i, listed.get(i).get("name"));
            assertEquals(date.getEpochSecond() + i, ((Number) listed.get(i).get("date-sec")).longValue());
            assertEquals(0L, ((Number) listed.get(i).get("icount")).longValue());
            assertEquals(-1, Images.firstDifference(atSnapshot.get(i), QemuSnapshots.read(image, i + 1, dir)),
                    "snapshot " + (i + 1) + " as qemu-img reads it");
        }
        for (int i = 0; i < 3; i++) {
            Path copy = dir.resolve("applied" + i + ".qcow2");
            Files.copy(image, copy, StandardCopyOption.REPLACE_EXISTING);
            Qemu.img("snapshot", "-a", "snap " + i, copy.toString());
            assertClean(copy);
            assertEquals(-1, Images.firstDifference(atSnapshot.get(i), Qemu.toRaw(copy, dir)));
        }
    }

    @Test
    void qemuSnapshotsAreListedAppliedAndDeletedByUs() throws IOException {
        Path image = dir.resolve("theirs.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", image.toString(), String.valueOf(SIZE));
        Qemu.io(image, "write -P 0x11 0 1M", "write -c -P 0x12 1M 8k");
        Qemu.img("snapshot", "-c", "q1", image.toString());
        byte[] first = Qemu.toRaw(image, dir);
        Qemu.io(image, "write -P 0x21 4k 12k", "write -P 0x22 2M 64k", "write -z 512k 64k");
        Qemu.img("snapshot", "-c", "q2", image.toString());
        byte[] second = Qemu.toRaw(image, dir);
        Qemu.io(image, "write -P 0x31 100k 300k", "discard 1M 64k");
        byte[] current = Qemu.toRaw(image, dir);
        List<Map<String, Object>> theirs = QemuSnapshots.info(image);

        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            List<Snapshot> ours = Snapshots.list(img);
            assertEquals(2, ours.size());
            for (int i = 0; i < 2; i++) {
                assertEquals(theirs.get(i).get("id"), ours.get(i).id());
                assertEquals(theirs.get(i).get("name"), ours.get(i).name());
                assertEquals(((Number) theirs.get(i).get("date-sec")).longValue(), ours.get(i).dateSec());
                assertEquals(((Number) theirs.get(i).get("date-nsec")).longValue(), ours.get(i).dateNsec());
            }
            assertEquals(-1, Images.firstDifference(current, Images.readAll(img, 1 << 20)));
            Snapshots.apply(img, Snapshots.findByIdOrName(ours, "q1").orElseThrow());
            assertEquals(-1, Images.firstDifference(first, Images.readAll(img, 1 << 20)));
        }
        assertClean(image);
        assertEquals(-1, Images.firstDifference(first, Qemu.toRaw(image, dir)));

        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            Snapshots.apply(img, Snapshots.findByIdOrName(Snapshots.list(img), "2").orElseThrow());
            assertEquals(-1, Images.firstDifference(second, Images.readAll(img, 1 << 20)));
        }
        assertClean(image);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            Snapshots.delete(img, Snapshots.findByName(Snapshots.list(img), "q1").orElseThrow());
        }
        assertClean(image);
        List<Map<String, Object>> left = QemuSnapshots.info(image);
        assertEquals(1, left.size());
        assertEquals("q2", left.get(0).get("name"));
        assertEquals(-1, Images.firstDifference(second, Qemu.toRaw(image, dir)));
        Qemu.io(image, "write -P 0x41 0 2M");
        Qemu.img("snapshot", "-a", "q2", image.toString());
        assertClean(image);
        assertEquals(-1, Images.firstDifference(second, Qemu.toRaw(image, dir)));
    }

    @Test
    void writesAfterASnapshotLeaveItsDataAndApplyBringsItBack() throws IOException {
        Path image = dir.resolve("back.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(SIZE).withClusterSize(4096));
        byte[] model = new byte[SIZE];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            randomWrites(img, model, 1, 30);
            byte[] before = model.clone();
            Snapshot s = Snapshots.create(img, "before");
            randomWrites(img, model, 2, 30);
            img.writeZeroes(8192, 1 << 20, true);
            img.discard(2 << 20, 1 << 20);
            img.flush();
            Snapshots.apply(img, s);
            assertEquals(-1, Images.firstDifference(before, Images.readAll(img, 65536)));
            // And the snapshot is still there, unchanged by writes after the apply.
            randomWrites(img, model, 3, 10);
            Snapshots.apply(img, s);
            assertEquals(-1, Images.firstDifference(before, Images.readAll(img, 65536)));
        }
        assertClean(image);
    }

    @Test
    void deletingTheMiddleSnapshotKeepsTheOthersAndFreesItsClusters() throws IOException {
        Path image = dir.resolve("middle.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(SIZE).withClusterSize(4096));
        byte[] model = new byte[SIZE];
        List<byte[]> states = new ArrayList<>();
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            for (int i = 0; i < 3; i++) {
                randomWrites(img, model, 10 + i, 20);
                Snapshots.create(img, "s" + i);
                states.add(model.clone());
            }
            randomWrites(img, model, 20, 20);
        }
        long usedWithThree = clustersInUse(image);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            Snapshots.delete(img, Snapshots.findByName(Snapshots.list(img), "s1").orElseThrow());
            assertEquals(List.of("s0", "s2"), Snapshots.list(img).stream().map(Snapshot::name).toList());
        }
        assertClean(image);
        // The clusters only s1 held (its L1 table, data overwritten before s2) are free.
        assertTrue(clustersInUse(image) < usedWithThree);
        assertEquals(-1, Images.firstDifference(states.get(0), QemuSnapshots.read(image, 1, dir)));
        assertEquals(-1, Images.firstDifference(states.get(2), QemuSnapshots.read(image, 3, dir)));
        assertEquals(-1, Images.firstDifference(model, Qemu.toRaw(image, dir)));
    }

    @Test
    void anOverflowingSnapshotIsUndoneInFull() throws IOException {
        Path image = dir.resolve("r2.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(SIZE).withClusterSize(4096).withRefcountBits(2));
        byte[] model = new byte[SIZE];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            randomWrites(img, model, 7, 20);
            Snapshots.create(img, "a");
            Snapshots.create(img, "b");
            // The first 16 clusters (and their L2 table) are rewritten and have refcount 1, the older ones 3 (the most
            // 2 bits hold): the third snapshot raises the new ones before it meets an old one, and takes those
            // increases back.
            byte[] head = new byte[65536];
            Arrays.fill(head, (byte) 0x5a);
            img.write(0, ByteBuffer.wrap(head));
            System.arraycopy(head, 0, model, 0, head.length);
            assertThrows(RefcountOverflowException.class, () -> Snapshots.create(img, "c"));
            assertEquals(List.of("a", "b"), Snapshots.list(img).stream().map(Snapshot::name).toList());
            randomWrites(img, model, 9, 20);
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)));
        }
        assertClean(image);
        assertEquals(-1, Images.firstDifference(model, Qemu.toRaw(image, dir)));
    }

    /** Host clusters something refers to, by our recount (which qemu-img check has found equal to the refcounts). */
    private static long clustersInUse(Path image) throws IOException {
        try (Storage file = FileStorage.open(image, true, false)) {
            Header header = ImageMetadata.readHeader(file);
            ReferenceCount refs = ReferenceCount.compute(file, header, ImageMetadata.readSnapshots(file, header));
            long used = 0;
            for (long c = 0; c < refs.clusters(); c++) {
                used += refs.references(c) > 0 ? 1 : 0;
            }
            return used;
        }
    }

    /** Random-sized pieces at random offsets, written to both the image and the model. */
    static void randomWrites(Qcow2Image img, byte[] model, long seed, int count) throws IOException {
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = 0; i < count; i++) {
            int len = 1 + rnd.nextInt(rnd.nextBoolean() ? 5000 : 150_000);
            int off = rnd.nextInt(model.length - len);
            byte[] data = new byte[len];
            Arrays.fill(data, (byte) (1 + rnd.nextInt(255)));
            img.write(off, ByteBuffer.wrap(data));
            System.arraycopy(data, 0, model, off, len);
        }
    }

    static void assertClean(Path image) {
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
        assertTrue(check.contains("\"check-errors\": 0"), check);
    }

    /**
     * A name that is not UTF-8 (QEMU stores the bytes it is given) survives our writing the table back: creating a
     * snapshot writes every entry again, and re-encoding a decoded name would have turned byte 0xe9 into U+FFFD.
     */
    @Test
    void aNameThatIsNotUtf8KeepsItsBytesWhenWeWriteTheTable() throws IOException {
        Path image = dir.resolve("latin1.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), String.valueOf(SIZE));
        // Through bash: a Java argument cannot carry a byte that is not UTF-8.
        Qemu.Result made = Qemu.exec(List.of("bash", "-c", "qemu-img snapshot -c $'caf\\xe9' \"$0\"",
                image.toString()));
        assertEquals(0, made.exitCode(), made.stderr());
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            Snapshots.create(img, "ours");
        }
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertArrayEquals(new byte[] {'c', 'a', 'f', (byte) 0xe9}, img.snapshots().get(0).nameBytes());
            assertEquals("caf\ufffd", img.snapshots().get(0).name(), "shown as text, as far as it is text");
        }
        Qemu.Result listed = Qemu.exec(List.of("bash", "-c",
                "qemu-img snapshot -l \"$0\" | LC_ALL=C grep -c $'caf\\xe9 '", image.toString()));
        assertEquals("1", listed.stdout().strip(), "qemu-img lists the name with its byte 0xe9");
        assertTrue(Qemu.img("check", image.toString()).contains("No errors were found"));
    }

    /**
     * An entry QEMU would not write: an id and a name with a NUL inside, and a recorded disk size of 2^64 - 2.
     * QEMU reads id and name into C strings: it lists and finds the entry by what comes before the NUL, and every
     * snapshot operation, which writes the whole table back, cuts them there; the disk size it keeps as it is,
     * and refuses to apply the snapshot (the truncate to it fails first). The same operations on two copies, one
     * by qemu-img and one by us, must leave the same bytes for the entry.
     */
    @Test
    void anOddEntryIsFoundAppliedAndRewrittenAsQemuImgDoes() throws IOException {
        Path image = withOneSnapshotEdited("odd.qcow2", made -> new Snapshot(made.l1TableOffset(), made.l1Size(),
                new byte[] {'1', 0, 'x'}, new byte[] {'s', '1', 0, 'y', 'z'}, made.dateSec(), made.dateNsec(),
                made.vmClockNsec(), made.vmStateSize32(), Snapshot.extraData(made.vmStateSize(), -2, made.icount())));
        Path theirs = dir.resolve("theirs.qcow2");
        Files.copy(image, theirs);
        assertTrue(Qemu.img("snapshot", "-l", theirs.toString()).contains("\n1         s1 "), "listed as 1, s1");
        Qemu.Result refused = Qemu.exec(List.of("qemu-img", "snapshot", "-a", "s1", theirs.toString()));
        assertEquals(1, refused.exitCode());
        assertTrue(refused.stderr().contains("Image size cannot be negative"), refused.stderr());
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            assertEquals("1", named(img, "s1").id(), "found by the name before the NUL");
            ImageException e = assertThrows(ImageException.class, () -> Snapshots.apply(img, named(img, "s1")));
            assertEquals("Image size cannot be negative", e.getMessage());
        }
        for (String[] step : new String[][] {{"-c", "s2"}, {"-d", "s2"}}) {
            Qemu.img("snapshot", step[0], step[1], theirs.toString());
            try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
                if (step[0].equals("-c")) {
                    Snapshots.create(img, step[1]);
                } else {
                    Snapshots.delete(img, named(img, step[1]));
                }
            }
            Snapshot ours = firstEntry(image);
            assertArrayEquals(SnapshotTable.encode(List.of(firstEntry(theirs))), SnapshotTable.encode(List.of(ours)),
                    "the first entry after snapshot " + step[0]);
            assertArrayEquals(new byte[] {'s', '1'}, ours.nameBytes(), "cut at the NUL");
            assertArrayEquals(new byte[] {'1'}, ours.idBytes());
            assertEquals(-2, ours.diskSize(), "a recorded disk size is kept as it is");
            assertTrue(Qemu.img("check", image.toString()).contains("No errors were found"));
        }
    }

    /**
     * A recorded disk size that is not whole sectors: QEMU's truncate to it refuses, so qemu-img snapshot -a fails
     * before it changes anything, and so does ours (it once wrote the odd size into the header, where QEMU and our
     * own requests see whole sectors only).
     */
    @Test
    void aSnapshotOfAnOddDiskSizeIsRefusedBeforeAnythingChanges() throws IOException {
        Path image = withOneSnapshotEdited("oddsize.qcow2", made -> new Snapshot(made.l1TableOffset(),
                made.l1Size(), made.idBytes(), made.nameBytes(), made.dateSec(), made.dateNsec(), made.vmClockNsec(),
                made.vmStateSize32(), Snapshot.extraData(made.vmStateSize(), 12345, made.icount())));
        try (Storage file = FileStorage.open(image, false, false)) {
            file.write(ByteBuffer.allocate(8).putLong(0, SIZE + 1L), 24); // the header's size, one byte over
        }
        Path theirs = dir.resolve("oddsize-theirs.qcow2");
        Files.copy(image, theirs);
        Qemu.Result refused = Qemu.exec(List.of("qemu-img", "snapshot", "-a", "s1", theirs.toString()));
        assertEquals(1, refused.exitCode());
        assertTrue(refused.stderr().contains("The new size must be a multiple of 512"), refused.stderr());
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            ImageException e = assertThrows(ImageException.class, () -> Snapshots.apply(img, named(img, "s1")));
            assertEquals("The new size must be a multiple of 512", e.getMessage());
        }
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertEquals(SIZE + 1L, img.header().size(), "the header as it was");
            assertEquals(SIZE, img.size());
        }
    }

    /**
     * A new image with one snapshot made by qemu-img, whose table entry is then replaced by {@code edit} of it (an
     * entry QEMU would not write; the encoded entry must fit the table's cluster).
     */
    private Path withOneSnapshotEdited(String name, UnaryOperator<Snapshot> edit) throws IOException {
        Path image = dir.resolve(name);
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), String.valueOf(SIZE));
        Qemu.img("snapshot", "-c", "s1", image.toString());
        Snapshot made;
        long tableOffset;
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            made = img.snapshots().get(0);
            tableOffset = img.header().snapshotsOffset();
        }
        try (Storage file = FileStorage.open(image, false, false)) {
            file.write(ByteBuffer.wrap(SnapshotTable.encode(List.of(edit.apply(made)))), tableOffset);
        }
        return image;
    }

    private static Snapshot named(Qcow2Image img, String name) {
        return Snapshots.findByName(img.snapshots(), name).orElseThrow();
    }

    private static Snapshot firstEntry(Path image) throws IOException {
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            return img.snapshots().get(0);
        }
    }
}
