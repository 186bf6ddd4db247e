package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.testing.BitmapFiles;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Images with persistent dirty bitmaps, made by qemu-img bitmap: info lists them and measure counts what they
 * would take, as qemu-img does; the driver keeps them up to date as QEMU does (in use while open for writing, the
 * guest's writes recorded, stored at close), and the image stays clean for QEMU.
 */
class CliBitmapsTest {
    private static final int BITMAPS_EXTENSION = 0x23852875;

    @TempDir
    Path dir;
    private Path image;

    @BeforeEach
    void image() {
        Qemu.assume();
        image = dir.resolve("b.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "3G");
        Qemu.io(image, "write -P 1 0 5M");
        Qemu.img("bitmap", "--add", image.toString(), "first");
        Qemu.img("bitmap", "--add", "-g", "512", image.toString(), "a-fine-grained-bitmap-with-a-longer-name");
        Qemu.img("bitmap", "--add", "-g", "2M", "--disable", image.toString(), "b3");
    }

    @Test
    void infoListsThemAsQemuImgDoes() throws Exception {
        String human = Cli.sameAsQemuImg("info", image);
        assertTrue(human.contains("    bitmaps:\n        [0]:\n            flags:\n                [0]: auto\n"
                + "            name: first\n            granularity: 65536\n"), human);
        Cli.sameAsQemuImg("info", "--output=json", image);
        // A bitmap a writer left open (killed before it stored the bitmap): in use, so stale.
        patchFirstBitmap(image, 12, new byte[] {0, 0, 0, 3});
        assertTrue(Cli.sameAsQemuImg("info", image).contains("[0]: in-use\n"));
        Cli.sameAsQemuImg("info", "--output=json", image);
    }

    /** A directory QEMU would not load (here a granularity of 2^40): both tools refuse the image in QEMU's words. */
    @Test
    void aDirectoryQemuRefusesIsRefused() throws Exception {
        patchFirstBitmap(image, 17, new byte[] {40});
        Cli.sameAsQemuImg("info", image);
        Cli.sameAsQemuImg("measure", "-O", "qcow2", image);
        Cli.sameAsQemuImg("measure", "-O", "raw", image); // no bitmaps line to count, refused at the open all the same
        Cli.sameAsQemuImg("measure", "-O", "qcow2", "-o", "compat=0.10", image);
    }

    @Test
    void measureCountsThemAsQemuImgDoes() {
        for (String o : new String[] {"cluster_size=64k", "cluster_size=512", "cluster_size=2M",
            "cluster_size=4k,compat=0.10", "extended_l2=on"}) {
            String out = Cli.sameAsQemuImg("measure", "-O", "qcow2", "-o", o, image);
            assertEquals(!o.contains("compat=0.10"), out.contains("bitmaps size: "), out);
            assertFalse(out.contains("bitmaps size: 0\n"), out);
        }
        Cli.sameAsQemuImg("measure", "-O", "qcow2", "--output=json", image);
        Cli.sameAsQemuImg("measure", "-O", "raw", image);
    }

    /**
     * A read-write open keeps the bitmaps as QEMU keeps them: in use on disk while open (so a crash leaves them
     * inconsistent), the guest's writes, zeroings and discards recorded in the enabled ones, and stored back,
     * consistent, at close: the same bits as QEMU's after the same requests, and the image clean.
     */
    @Test
    void aReadWriteOpenKeepsThemAsQemuDoes() throws Exception {
        Path theirs = dir.resolve("theirs.qcow2");
        Files.copy(image, theirs);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            img.write(0, ByteBuffer.wrap(new byte[65536]));
            img.write((3 << 20) + 1000, ByteBuffer.wrap(new byte[5000]));
            img.writeZeroes(20 << 20, 3 << 20, true);
            img.discard(1L << 30, 2 << 20);
            String open = Cli.succeeding("info", "-U", image.toString());
            assertEquals(3, open.split("\\[0\\]: in-use", -1).length - 1, open);
        }
        Qemu.io(theirs, "write 0 64k", "write " + ((3 << 20) + 1000) + " 5000", "write -z -u 20M 3M",
                "discard 1G 2M");
        assertClean(image);
        String info = Cli.sameAsQemuImg("info", image);
        assertFalse(info.contains("in-use"), info);
        for (String bitmap : List.of("first", "a-fine-grained-bitmap-with-a-longer-name", "b3")) {
            assertEquals(BitmapFiles.qemuDirtyMap(theirs, bitmap), BitmapFiles.qemuDirtyMap(image, bitmap), bitmap);
        }
        assertTrue(BitmapFiles.qemuDirtyMap(image, "first").contains("\"start\": 20971520, \"length\": 3145728"));
        // QEMU writes on, and removes one on request.
        Qemu.io(image, "write -P 7 1M 64k");
        Qemu.img("bitmap", "--remove", image.toString(), "first");
        assertClean(image);
        assertFalse(Cli.sameAsQemuImg("info", image).contains("name: first"));
    }

    /**
     * Bitmaps a writer left in use are not kept: they stay in use, and the image clean; a resize is refused while
     * there are such bitmaps, in QEMU's words.
     */
    @Test
    void bitmapsInUseStayInUse() throws Exception {
        BitmapFiles.markAllInUse(image);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            img.write(2 << 20, ByteBuffer.wrap(new byte[4096]));
        }
        assertClean(image);
        assertEquals(3, Cli.sameAsQemuImg("info", image).split("\\[0\\]: in-use", -1).length - 1);
        Cli.sameAsQemuImg("resize", image, "+1M");
    }

    /**
     * commit, with a bitmap in the base and one in the top: the base's records the data committed into it, the top's
     * only what was written to it (emptying it changes nothing the guest reads), as after qemu-img commit.
     */
    @Test
    void commitLeavesBothBitmapsAsQemuImgDoes() throws Exception {
        List<Path> ours = List.of(dir.resolve("base.qcow2"), dir.resolve("top.qcow2"));
        List<Path> theirs = List.of(dir.resolve("qbase.qcow2"), dir.resolve("qtop.qcow2"));
        for (List<Path> chain : List.of(ours, theirs)) {
            Qemu.img("create", "-q", "-f", "qcow2", chain.get(0).toString(), "16M");
            Qemu.img("create", "-q", "-f", "qcow2", "-b", chain.get(0).toString(), "-F", "qcow2",
                    chain.get(1).toString());
            Qemu.img("bitmap", "--add", chain.get(0).toString(), "b0");
            Qemu.img("bitmap", "--add", chain.get(1).toString(), "t0");
            Qemu.io(chain.get(1), "write 1M 64k", "write -z 3M 128k");
        }
        Cli.succeeding("commit", "-q", ours.get(1).toString());
        Qemu.img("commit", "-q", theirs.get(1).toString());
        for (int i = 0; i < 2; i++) {
            String bitmap = i == 0 ? "b0" : "t0";
            assertEquals(BitmapFiles.qemuDirtyMap(theirs.get(i), bitmap), BitmapFiles.qemuDirtyMap(ours.get(i),
                    bitmap), bitmap);
            assertClean(ours.get(i));
        }
    }

    /** A disk whose bitmaps' last word is partial (1000 KiB + 512 at 512 bytes a bit): the end kept as QEMU does. */
    @Test
    void theLastPartialWordIsKept() throws Exception {
        Path small = dir.resolve("small.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", small.toString(), String.valueOf(1000 * 1024 + 512));
        Qemu.img("bitmap", "--add", "-g", "512", small.toString(), "fine");
        Path theirs = dir.resolve("theirs.qcow2");
        Files.copy(small, theirs);
        try (Qcow2Image img = Qcow2Image.open(small, OpenOptions.readWriteDefaults())) {
            img.write(1000 * 1024 - 1024, ByteBuffer.wrap(new byte[1536]));
            img.write(0, ByteBuffer.wrap(new byte[512]));
        }
        Qemu.io(theirs, "write " + (1000 * 1024 - 1024) + " 1536", "write 0 512");
        String map = BitmapFiles.qemuDirtyMap(small, "fine");
        assertEquals(BitmapFiles.qemuDirtyMap(theirs, "fine"), map);
        assertTrue(map.contains("\"start\": 1022976, \"length\": 1536"), map);
        assertClean(small);
    }

    /**
     * An image QEMU left dirty (lazy refcounts, killed while it wrote): the repair of a read-write open counts the
     * bitmaps' clusters as referenced, so it frees none of them.
     */
    @Test
    void theRepairOfADirtyImageKeepsTheBitmapsClusters() throws Exception {
        Path lazy = dir.resolve("lazy.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", lazy.toString(), "1G");
        Qemu.img("bitmap", "--add", lazy.toString(), "b0");
        Qemu.Result killed = Qemu.exec(List.of("qemu-io", "-c", "write -P 1 0 1M", "-c", "sigraise 9",
                lazy.toString()));
        assertTrue(killed.exitCode() != 0, "qemu-io killed itself");
        assertTrue(Qemu.img("info", lazy.toString()).contains("in-use"), "QEMU marked it in use as it opened");
        try (Qcow2Image img = Qcow2Image.open(lazy, OpenOptions.readWriteDefaults())) {
            img.write(4 << 20, ByteBuffer.wrap(new byte[65536]));
        }
        assertClean(lazy);
        Cli.sameAsQemuImg("info", lazy);
    }

    /**
     * snapshot -c and -d change no guest data: as under qemu-img, the bitmaps stay consistent; -a changes what the
     * guest reads: every bit of the enabled bitmaps is set (QEMU refuses the apply under any bitmap), and under a
     * disabled one, which would miss it, it is refused as there.
     */
    @Test
    void snapshotCreateAndDeleteKeepThemConsistent() throws Exception {
        Cli.succeeding("snapshot", "-c", "s1", image.toString());
        Cli.succeeding("snapshot", "-c", "s2", image.toString());
        Cli.succeeding("snapshot", "-d", "s1", image.toString());
        assertClean(image);
        String info = Cli.sameAsQemuImg("info", image);
        assertFalse(info.contains("in-use"), info);
        // QEMU still uses them: a write of its own, then a merge of one bitmap into another.
        Qemu.io(image, "write -P 9 2M 64k");
        Qemu.img("bitmap", "--merge", "first", image.toString(), "b3");
        assertClean(image);
        // Under a disabled bitmap (b3) the apply is refused, as qemu-img refuses it under any: b3 would miss it.
        Cli.sameAsQemuImg("snapshot", "-a", "s2", image);
        Qemu.img("bitmap", "--enable", image.toString(), "b3");
        Cli.succeeding("snapshot", "-a", "s2", image.toString());
        assertClean(image);
        assertFalse(Cli.sameAsQemuImg("info", image).contains("in-use"));
        for (String bitmap : List.of("first", "b3")) {
            assertEquals("[[{ \"start\": 0, \"length\": 3221225472, \"depth\": 0, \"present\": false, \"zero\":"
                    + " false, \"data\": false}]]", BitmapFiles.qemuDirtyMap(image, bitmap), bitmap);
        }
    }

    /** amend leaves them consistent; a new size resizes them as QEMU does, the new range clean. */
    @Test
    void amendKeepsThemConsistent() throws Exception {
        Cli.succeeding("amend", "-o", "lazy_refcounts=on", image.toString());
        Cli.succeeding("amend", "-o", "lazy_refcounts=off", image.toString());
        assertClean(image);
        String info = Cli.sameAsQemuImg("info", image);
        assertFalse(info.contains("in-use"), info);
        Qemu.io(image, "write " + ((3L << 30) - 65536) + " 64k");
        Path theirs = dir.resolve("theirs.qcow2");
        Files.copy(image, theirs);
        Cli.succeeding("amend", "-o", "size=4G", image.toString());
        Qemu.img("amend", "-o", "size=4G", theirs.toString());
        assertClean(image);
        assertEquals(BitmapFiles.qemuInfoBitmaps(theirs), BitmapFiles.qemuInfoBitmaps(image));
        for (String bitmap : List.of("first", "a-fine-grained-bitmap-with-a-longer-name", "b3")) {
            assertEquals(BitmapFiles.qemuDirtyMap(theirs, bitmap), BitmapFiles.qemuDirtyMap(image, bitmap), bitmap);
        }
    }

    /** An open that fails (its backing file gone) leaves the bitmaps as they were: they are marked last. */
    @Test
    void aFailedOpenLeavesThemUntouched() throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "64M");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString());
        Qemu.img("bitmap", "--add", top.toString(), "b0");
        Files.delete(base);
        assertThrows(IOException.class, () -> Qcow2Image.open(top, OpenOptions.readWriteDefaults()));
        String info = Qemu.img("info", top.toString());
        assertTrue(info.contains("name: b0") && !info.contains("in-use"), info);
    }

    /** qemu-img check finds nothing, and QEMU opens the image without a warning. */
    private static void assertClean(Path image) {
        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(0, check.exitCode(), check.stdout() + check.stderr());
        assertEquals("", check.stderr());
    }

    /** Writes {@code bytes} at {@code at} in the directory's first entry, found through the bitmaps extension. */
    private static void patchFirstBitmap(Path image, int at, byte[] bytes) throws Exception {
        try (FileChannel f = FileChannel.open(image, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(8);
            f.read(b.clear().limit(4), 100);
            long pos = b.getInt(0); // header_length: the extensions follow
            while (true) {
                f.read(b.clear(), pos);
                int type = b.getInt(0);
                int length = b.getInt(4);
                assertTrue(type != 0, "no bitmaps extension");
                if (type == BITMAPS_EXTENSION) {
                    f.read(b.clear(), pos + 8 + 16);
                    f.write(ByteBuffer.wrap(bytes), b.getLong(0) + at);
                    return;
                }
                pos += 8 + ((length + 7) & -8);
            }
        }
    }
}
