package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.image.BitmapBits;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.testing.BitmapFiles;
import io.github.qcowloom.testing.EncryptedImages;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bitmap command against qemu-img bitmap: the same steps on two copies of an image, one by each tool, give the
 * same exit codes and messages, the same bitmaps (names, flags, granularities) and the same bits, read by this
 * driver and by QEMU (qemu-nbd's dirty-bitmap context) from both; and our copy checks as clean as theirs.
 */
class CliBitmapCommandTest {
    @TempDir
    Path dir;

    @BeforeEach
    void qemu() {
        Qemu.assume();
    }

    private Path written(String name, String size, String clusterSize) {
        return BitmapFiles.qemuImageWithBitmaps(dir.resolve(name), size, clusterSize);
    }

    /**
     * Runs each step ({@code IMG} standing for the image) with qemu-img on one copy of {@code base} and with ours
     * on another, asserting the same answers; then compares what the copies hold. Returns our copy.
     */
    private Path sameSteps(Path base, List<List<String>> steps) throws Exception {
        Path ours = sameAnswers(base, steps);
        Path theirs = dir.resolve("theirs.qcow2");
        assertEquals(BitmapFiles.qemuInfoBitmaps(theirs), BitmapFiles.qemuInfoBitmaps(ours));
        Map<String, List<Long>> bits = bits(theirs);
        assertEquals(bits, bits(ours));
        if (Files.size(base) < 1L << 30) { // QEMU's own reading of our bits too; a map of a large disk is slow
            for (String bitmap : bits.keySet()) {
                assertEquals(BitmapFiles.qemuDirtyMap(theirs, bitmap), BitmapFiles.qemuDirtyMap(ours, bitmap), bitmap);
            }
        }
        // Clean as qemu-img's copy is (a table patched by a test may leak a cluster in both).
        assertEquals(Qemu.exec(List.of("qemu-img", "check", "-q", theirs.toString())).exitCode(),
                Qemu.exec(List.of("qemu-img", "check", "-q", ours.toString())).exitCode());
        return ours;
    }

    /** The steps' exit codes and messages alone, each tool on a copy of {@code base}; returns our copy. */
    private Path sameAnswers(Path base, List<List<String>> steps) throws IOException {
        Path theirs = dir.resolve("theirs.qcow2");
        Path ours = dir.resolve("ours.qcow2");
        Files.copy(base, theirs, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Files.copy(base, ours, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        for (List<String> step : steps) {
            List<String> q = new ArrayList<>(List.of("qemu-img", "bitmap"));
            step.forEach(a -> q.add(a.replace("IMG", theirs.toString())));
            Qemu.Result expected = Qemu.exec(q);
            List<String> o = new ArrayList<>(List.of("bitmap"));
            step.forEach(a -> o.add(a.replace("IMG", ours.toString())));
            Cli.Run run = Cli.ours(o.toArray(String[]::new));
            String context = step + ": qemu-img said " + expected.stderr() + " ours " + run.err();
            assertEquals(expected.exitCode(), run.code(), context);
            // QEMU names the image by its node name where the command names it by its file.
            assertEquals(expected.stderr().replace("qemu-img: ", "qcow2-loom: ")
                    .replaceAll("#block[0-9]+", "IMG").replace(theirs.toString(), "IMG"),
                    run.err().replace(ours.toString(), "IMG"), context);
        }
        return ours;
    }

    /** {@link BitmapFiles#dirtyRuns} of a plain image. */
    private static Map<String, List<Long>> bits(Path image) throws IOException {
        return BitmapFiles.dirtyRuns(image, OpenOptions.readOnlyDefaults());
    }

    private static List<String> step(String... args) {
        return List.of(args);
    }

    @Test
    void stepsInOrderAsQemuImgTakesThem() throws Exception {
        Path base = written("base.qcow2", "64M", "64k");
        Path ours = sameSteps(base, List.of(
                step("--add", "-g", "512", "IMG", "x"),
                step("--merge", "b0", "IMG", "x"),
                step("--merge", "fine", "IMG", "x"),
                step("--add", "--merge", "coarse", "IMG", "y"),
                step("--merge", "x", "IMG", "y"),
                step("--clear", "IMG", "b0"),
                step("--disable", "IMG", "fine"),
                step("--remove", "IMG", "coarse"),
                step("--enable", "IMG", "fine"),
                step("--merge", "nope", "IMG", "x"),
                step("--add", "IMG", "x"),
                step("--add", "--add", "IMG", "twice"), // the first add is kept
                step("--merge", "y", "--merge", "fine", "IMG", "z"),
                step("--add", "--disable", "--merge", "x", "-g", "8k", "IMG", "z"),
                // Tables written earlier in the same run: merged from, merged into, then dropped.
                step("--merge", "b0", "--merge", "x", "IMG", "x"),
                step("--add", "--merge", "b0", "--merge", "fine", "--clear", "IMG", "w"),
                step("--add", "--merge", "coarse", "--remove", "IMG", "v"),
                step("--add", "--remove", "IMG", "t")));
        for (String bitmap : List.of("x", "y", "z")) {
            String map = BitmapFiles.qemuDirtyMap(ours, bitmap);
            assertTrue(map.contains("\"start\": 66060288"), map);
        }
        // QEMU takes our bitmaps up: an enabled one records its writes.
        Qemu.io(ours, "write 10M 4k");
        assertTrue(BitmapFiles.qemuDirtyMap(ours, "b0").contains("\"start\": 10485760, \"length\": 65536"));
        Qemu.run(List.of("qemu-img", "check", "-q", ours.toString()));
    }

    /**
     * Tables of many clusters (512-byte clusters), granularities from 512 bytes to 2 GiB, and 2 MiB clusters; a disk
     * whose size no granularity over 1 KiB divides, so that the last bit of each covers a part.
     */
    @Test
    void clusterSizesAndGranularities() throws Exception {
        List<List<String>> steps = List.of(
                step("--add", "-g", "512", "IMG", "c"),
                step("--merge", "b0", "IMG", "c"),
                step("--merge", "c", "IMG", "fine"),
                step("--clear", "IMG", "coarse"),
                step("--merge", "c", "IMG", "coarse"),
                step("--add", "-g", "2147483648", "IMG", "huge"),
                step("--merge", "fine", "IMG", "huge"));
        sameSteps(written("small.qcow2", "64M", "512"), steps);
        sameSteps(written("large.qcow2", "64M", "2M"), steps);
        sameSteps(written("odd.qcow2", String.valueOf((64 << 20) + 3072), "64k"), steps);
    }

    /** QEMU 7.2's limit: at most 512 MiB of bits a bitmap (a 300 GiB disk at 512 bytes a bit has 75 MiB). */
    @Test
    void theSizeLimitIsQemus() throws Exception {
        Path large = dir.resolve("large.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", large.toString(), "300G");
        sameSteps(large, List.of(step("--add", "-g", "512", "IMG", "fits")));
        Path huge = dir.resolve("huge.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", huge.toString(), "5T");
        sameSteps(huge, List.of(step("--add", "-g", "512", "IMG", "too-big"), step("--add", "-g", "4k", "IMG", "ok")));
    }

    /**
     * Tables QEMU reads but does not write: a cluster of all ones (no data cluster), whose bits past the disk's end
     * are not merged; and tables it refuses to load, with a reserved bit or more entries than the disk needs, which
     * refuse the open in its words.
     */
    @Test
    void tablesOfOtherWriters() throws Exception {
        Path base = written("base.qcow2", String.valueOf((64 << 20) + 3072), "64k");
        Path ones = dir.resolve("ones.qcow2");
        Files.copy(base, ones);
        patchTable(ones, "coarse", 0, 1); // the first entry: all ones
        sameSteps(ones, List.of(step("--add", "-g", "512", "--merge", "coarse", "IMG", "x"),
                step("--merge", "coarse", "IMG", "b0"), step("--clear", "IMG", "coarse")));
        Path reserved = dir.resolve("reserved.qcow2");
        Files.copy(base, reserved);
        patchTable(reserved, "fine", 0, 2);
        sameAnswers(reserved, List.of(step("--add", "IMG", "x"), step("--remove", "IMG", "fine")));
        Cli.sameAsQemuImg("info", reserved); // refused at the open, as by qemu-img
        Cli.sameAsQemuImg("measure", "-O", "qcow2", reserved);
        Path longer = dir.resolve("longer.qcow2");
        Files.copy(base, longer);
        patchTableSize(longer, "b0", 1);
        sameAnswers(longer, List.of(step("--add", "IMG", "x")));
        Cli.sameAsQemuImg("info", longer);
    }

    /** Writes {@code value} over entry {@code index} of {@code bitmap}'s table. */
    private static void patchTable(Path image, String bitmap, int index, long value) throws IOException {
        BitmapDirectory.Entry e = entry(image, bitmap);
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).putLong(0, value), e.tableOffset() + index * 8L);
        }
    }

    /** Adds {@code more} to the table size {@code bitmap}'s directory entry gives. */
    private static void patchTableSize(Path image, String bitmap, int more) throws IOException {
        BitmapDirectory.Entry e = entry(image, bitmap);
        long directory;
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            directory = img.bitmapDirectory().orElseThrow().offset();
        }
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(4).putInt(0, (int) e.tableEntries() + more), directory + e.position() + 8);
        }
    }

    private static BitmapDirectory.Entry entry(Path image, String bitmap) throws IOException {
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            return img.persistentBitmaps().stream().filter(b -> b.name().equals(bitmap)).findFirst().orElseThrow();
        }
    }

    /** Bitmaps a writer left in use: only a removal, as under QEMU; a new one is usable beside them. */
    @Test
    void bitmapsInUse() throws Exception {
        Path base = written("base.qcow2", "64M", "64k");
        BitmapFiles.markAllInUse(base);
        sameSteps(base, List.of(
                step("--clear", "IMG", "b0"),
                step("--enable", "IMG", "fine"),
                step("--merge", "fine", "IMG", "b0"),
                step("--add", "IMG", "new"),
                step("--merge", "b0", "IMG", "new"),
                step("--remove", "IMG", "coarse")));
    }

    @Test
    void mergesFromAnotherImage() throws Exception {
        Path base = written("base.qcow2", "64M", "64k");
        Path source = dir.resolve("source.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", source.toString(), "64M");
        Qemu.img("bitmap", "--add", "-g", "8k", source.toString(), "s");
        Qemu.io(source, "write 5M 100k");
        Path small = dir.resolve("small.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", small.toString(), "32M");
        Qemu.img("bitmap", "--add", small.toString(), "s");
        Path inUse = dir.resolve("in-use.qcow2");
        Files.copy(source, inUse);
        BitmapFiles.markAllInUse(inUse);
        sameSteps(base, List.of(
                step("--merge", "s", "-b", source.toString(), "IMG", "b0"),
                step("--merge", "s", "-b", source.toString(), "-F", "qcow2", "IMG", "fine"),
                step("--merge", "s", "-b", small.toString(), "IMG", "b0"),
                step("--merge", "s", "-b", inUse.toString(), "IMG", "b0"),
                step("--merge", "s", "-b", source.toString(), "-F", "raw", "IMG", "b0"),
                step("--merge", "nope", "-b", source.toString(), "IMG", "b0"),
                step("--merge", "s", "-b", dir.resolve("missing.qcow2").toString(), "IMG", "b0")));
    }

    /** Removing the last bitmap drops the extension and its autoclear bit, as QEMU does; adding one brings both. */
    @Test
    void theLastRemovalDropsTheExtension() throws Exception {
        Path ours = sameSteps(written("base.qcow2", "64M", "64k"), List.of(
                step("--remove", "IMG", "b0"), step("--remove", "IMG", "fine"), step("--remove", "IMG", "coarse")));
        assertFalse(Qemu.img("info", ours.toString()).contains("bitmaps"));
        assertEquals(Files.readAllBytes(dir.resolve("theirs.qcow2")).length, Files.readAllBytes(ours).length);
        byte[] header = Files.readAllBytes(ours);
        assertEquals(0, header[95] & 1, "autoclear bitmaps bit");
        Path empty = dir.resolve("empty.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", empty.toString(), "1G");
        sameSteps(empty, List.of(step("--add", "IMG", "a"), step("--add", "-g", "64k", "--disable", "IMG", "b")));
    }

    /**
     * qemu-img's bitmap opens the image without its backing file, and with its data file: a backing file missing or
     * encrypted (no passphrase given) does not stop it; a data file missing does.
     */
    @Test
    void theBackingFileIsNotOpenedTheDataFileIs() throws Exception {
        Path gone = dir.resolve("gone.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", gone.toString(), "16M");
        Path overGone = dir.resolve("over-gone.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", gone.toString(), "-F", "qcow2", overGone.toString());
        Files.delete(gone);
        Path locked = dir.resolve("locked.qcow2");
        EncryptedImages.create(locked, 16 << 20, "");
        Path overLocked = dir.resolve("over-locked.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", locked.toString(), "-F", "qcow2", overLocked.toString());
        for (Path top : List.of(overGone, overLocked)) {
            Path ours = sameAnswers(top, List.of(step("--add", "IMG", "b0"), step("--disable", "IMG", "b0")));
            assertEquals(BitmapFiles.qemuInfoBitmaps(dir.resolve("theirs.qcow2")), BitmapFiles.qemuInfoBitmaps(ours));
        }
        Path withData = dir.resolve("data.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "data_file=" + dir.resolve("data.raw"), withData.toString(),
                "16M");
        Files.delete(dir.resolve("data.raw"));
        Cli.sameAsQemuImg("bitmap", "--add", withData, "b0");
    }

    /** The command line's refusals, word for word. */
    @Test
    void refusals() throws Exception {
        Path base = written("base.qcow2", "64M", "64k");
        Path v2 = dir.resolve("v2.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", v2.toString(), "16M");
        Path raw = dir.resolve("r.raw");
        Qemu.img("create", "-q", "-f", "raw", raw.toString(), "1M");
        sameSteps(base, List.of(
                step("IMG", "b0"),
                step("--enable", "-g", "4096", "IMG", "b0"),
                step("--add", "-g", "abc", "IMG", "q"),
                step("--add", "-g", "1000", "IMG", "q"),
                step("--add", "-g", "4G", "IMG", "q"),
                step("--merge", "b0", "-F", "qcow2", "IMG", "q"),
                step("--add", "-b", base.toString(), "IMG", "q"),
                step("--add", "IMG"),
                step("--add", "IMG", "a", "b"),
                step("--add", "IMG", ""),
                step("--add", "IMG", "n".repeat(1024)),
                step("--add", "IMG", "n".repeat(1023)),
                step("--remove", "IMG", "nope"),
                step("--add", "-g", "512", "IMG", "é")));
        Cli.sameAsQemuImg("bitmap", "--add", dir.resolve("missing.qcow2"), "a");
        Cli.Run r = Cli.ours("bitmap", "--add", v2.toString(), "a");
        assertEquals("qcow2-loom: Operation add on bitmap a failed: Can't make bitmap 'a' persistent in '" + v2
                + "': Cannot store dirty bitmaps in qcow2 v2 files\n", r.err());
        Qemu.Result q = Qemu.exec(List.of("qemu-img", "bitmap", "--remove", "-f", "raw", raw.toString(), "a"));
        r = Cli.ours("bitmap", "--remove", "-f", "raw", raw.toString(), "a");
        assertEquals(q.stderr().replace("qemu-img: ", "qcow2-loom: "), r.err());
        r = Cli.ours("bitmap", "--add", "-f", "raw", raw.toString(), "a");
        assertEquals("qcow2-loom: Operation add on bitmap a failed: Can't store persistent bitmaps to " + raw
                + ": Operation not supported\n", r.err());
    }
}
