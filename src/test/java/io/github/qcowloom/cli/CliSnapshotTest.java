package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** snapshot side by side with qemu-img snapshot: the -l table byte for byte, the actions, messages and exit codes. */
class CliSnapshotTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private String image(String name) {
        String img = dir.resolve(name).toString();
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "2M");
        Qemu.io(Path.of(img), "write -P 0x11 0 256k");
        return img;
    }

    /** Runs the same snapshot command line through qemu-img and through ours, on two copies of one image. */
    private void assertSameAsQemu(String img, String... args) throws IOException {
        Path copy = dir.resolve("qemu-" + Path.of(img).getFileName());
        Files.copy(Path.of(img), copy, StandardCopyOption.REPLACE_EXISTING);
        List<String> cmd = new ArrayList<>(List.of("qemu-img", "snapshot"));
        cmd.addAll(List.of(args));
        cmd.add(copy.toString());
        Qemu.Result theirs = Qemu.exec(cmd);
        List<String> ourArgs = new ArrayList<>(List.of("snapshot"));
        ourArgs.addAll(List.of(args));
        ourArgs.add(img);
        Cli.Run r = ours(ourArgs.toArray(String[]::new));
        String what = String.join(" ", args);
        assertEquals(theirs.exitCode() == 0 ? 0 : 1, r.code(), what + ": " + r.err());
        assertEquals(theirs.stdout(), r.out(), what);
        assertEquals(firstLine(theirs.stderr()).replace("qemu-img: ", "").replace(copy.toString(), img),
                firstLine(r.err()).replace("qcow2-loom: ", ""), what);
        // The same snapshots afterwards (dates aside), and the same guest contents.
        assertEquals(undated(Qemu.img("snapshot", "-l", copy.toString())), undated(Qemu.img("snapshot", "-l", img)),
                what);
        Qemu.img("compare", "-q", copy.toString(), img);
    }

    private static String undated(String listing) {
        return listing.replaceAll("\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d", "DATE");
    }

    private static String firstLine(String s) {
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }

    @Test
    void listIsQemuImgsTableByteForByte() throws IOException {
        String img = image("list.qcow2");
        assertEquals("", ours("snapshot", "-l", img).out(), "no snapshots: nothing at all");
        Qemu.img("snapshot", "-c", "s1", img);
        Qemu.img("snapshot", "-c", "a name longer than the sixteen columns of TAG", img);
        Qemu.img("snapshot", "-c", "café", img); // qemu-img pads by bytes: five here
        Qemu.img("snapshot", "-c", "", img);
        Qemu.img("snapshot", "-c", "s1", img);
        // Columns qemu-img never fills itself: a VM clock, a VM state size, and an entry without icount.
        withClockStateAndNoIcount(Path.of(img));
        String expected = Qemu.img("snapshot", "-l", img);
        assertTrue(expected.contains("01:02:03.456"), expected);
        Cli.Run r = ours("snapshot", "-l", img);
        assertEquals(0, r.code(), r.err());
        assertEquals(expected, r.out());
        assertEquals(Qemu.img("snapshot", "-l", "-U", img), ours("snapshot", "-l", "-U", "-q", img).out());
        assertEquals(Qemu.img("info", img), ours("info", img).out());
    }

    /**
     * Rewrites the snapshot table (in a new cluster at the end of the file) with a VM clock and VM state size on the
     * first entry and the second cut to 16 bytes of extra data (no icount): what a savevm and an old QEMU write.
     */
    private static void withClockStateAndNoIcount(Path image) throws IOException {
        Header h;
        List<Snapshot> list;
        try (Storage file = FileStorage.open(image, true, false)) {
            h = ImageMetadata.readHeader(file);
            list = new ArrayList<>(ImageMetadata.readSnapshots(file, h));
        }
        Snapshot a = list.get(0);
        list.set(0, new Snapshot(a.l1TableOffset(), a.l1Size(), a.id(), a.name(), a.dateSec(), a.dateNsec(),
                3_723_456_789_012L, 1_572_864, Snapshot.extraData(1_572_864, a.diskSize(), 42)));
        Snapshot b = list.get(1);
        list.set(1, new Snapshot(b.l1TableOffset(), b.l1Size(), b.id(), b.name(), b.dateSec(), b.dateNsec(), 0, 0,
                java.util.Arrays.copyOf(b.extraData(), 16)));
        byte[] table = SnapshotTable.encode(list);
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            long at = Bytes.alignUp(f.length(), h.clusterSize());
            f.seek(at);
            f.write(table);
            f.seek(64);
            f.writeLong(at);
        }
    }

    @Test
    void actionsMessagesAndExitCodesAreQemuImgs() throws IOException {
        String img = image("act.qcow2");
        assertSameAsQemu(img, "-c", "one");
        assertSameAsQemu(img, "-c", "one"); // names need not be unique
        Qemu.io(Path.of(img), "write -P 0x22 0 64k");
        assertSameAsQemu(img, "-c", "1"); // a name that is another snapshot's id
        assertSameAsQemu(img, "-a", "nope");
        assertSameAsQemu(img, "-d", "nope");
        assertSameAsQemu(img, "-d", "2"); // -d looks up names only
        assertSameAsQemu(img, "-a", "2"); // -a looks up ids first: the second "one", before the 0x22 write
        Qemu.io(Path.of(img), "read -P 0x11 0 64k");
        assertSameAsQemu(img, "-a", "1"); // id 1, not the snapshot named "1"
        Qemu.io(Path.of(img), "read -P 0x11 0 64k");
        assertSameAsQemu(img, "-a", "3");
        Qemu.io(Path.of(img), "read -P 0x22 0 64k");
        assertSameAsQemu(img, "-d", "1"); // the snapshot named "1" (id 3), not id 1
        assertSameAsQemu(img, "-l", "-c", "x");
        assertSameAsQemu(img, "-a", "one", "-d", "one");
        assertSameAsQemu(img);
        assertSameAsQemu(img, "-q", "-a", "one");
        Qemu.io(Path.of(img), "read -P 0x11 0 256k");
        assertSameAsQemu(img, "-d", "one");
        assertSameAsQemu(img, "-d", "one");
        assertSameAsQemu(img, "-d", "one");
        String check = Qemu.img("check", "--output=json", img);
        assertFalse(check.contains("\"leaks\"") || check.contains("\"corruptions\""), check);
    }

    @Test
    void rawImagesHaveNoSnapshots() throws IOException {
        String raw = dir.resolve("r.raw").toString();
        Qemu.img("create", "-q", "-f", "raw", raw, "1M");
        for (String[] args : new String[][] {{"-l"}, {"-c", "x"}, {"-d", "x"}}) {
            List<String> a = new ArrayList<>(List.of(args));
            a.add(raw);
            Cli.sameAsQemuImg("snapshot", a.toArray()); // with the warning of a format probed as raw
        }
        // qemu-img's apply warns twice: it reopens the raw driver after trying the file's snapshots. Ours once.
        Qemu.Result theirs = Qemu.exec(List.of("qemu-img", "snapshot", "-a", "x", raw));
        Cli.Run r = ours("snapshot", "-a", "x", raw);
        assertEquals(theirs.exitCode(), r.code());
        assertEquals(theirs.stderr().lines().distinct().toList(),
                r.err().replace("qcow2-loom: ", "qemu-img: ").lines().toList());
    }

    /**
     * An apply under a disabled persistent bitmap is refused in qemu-img's words, before the name is looked up: the
     * bitmap, a record kept still, would miss the change (ours applies under enabled ones, setting all their bits).
     * Before, the apply went through and the disabled bitmap read clean over the changed data.
     */
    @Test
    void applyUnderADisabledBitmapIsRefusedAsQemuImgRefusesIt() throws IOException {
        Path img = dir.resolve("bm.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "4M");
        Qemu.io(img, "write -P 1 0 1M");
        Qemu.img("snapshot", "-c", "s1", img.toString());
        Qemu.io(img, "write -P 2 0 1M");
        Qemu.img("bitmap", "--add", "--disable", img.toString(), "frozen");
        Cli.sameAsQemuImg("snapshot", "-a", "s1", img);
        Cli.sameAsQemuImg("snapshot", "-a", "missing", img);
        String read = Qemu.io(img, "read -P 2 0 1M");
        assertFalse(read.contains("failed"), "the guest still reads what it wrote after the snapshot: " + read);
    }

    @Test
    void missingFileIsReportedAsByTheOtherCommands() {
        Cli.Run r = ours("snapshot", "-l", dir.resolve("none.qcow2").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("Could not open"), r.err());
    }
}
