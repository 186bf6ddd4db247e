package io.github.qcowloom.image;

import static io.github.qcowloom.image.CompressedWriteTest.textCluster;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Compressed writes on the image kinds beyond the plain one, against qemu-io's write -c on copies of one image:
 * extended L2 (the compressed cluster's bitmap becomes 0), images with internal snapshots (a shared L2 table is
 * copied first) and images with an external data file (refused with QEMU's ENOTSUP).
 */
class CompressedWriteFeaturesTest {
    private static final int CS = 65536;
    private static final int SUB = CS / 32;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** Runs one qemu-io command, whether it fails or not, and returns what it printed. */
    private static String qemuIo(Path image, String command) {
        return Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", command, image.toString()),
                image.toAbsolutePath().getParent()).stdout();
    }

    private Path file(String name, byte[] data) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, data);
        return p;
    }

    private static void assertQemuClean(Path image) {
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
    }

    private static byte[] random(long seed, int length) {
        byte[] b = new byte[length];
        new SplittableRandom(seed).nextBytes(b);
        return b;
    }

    /**
     * Extended L2, every state a cluster can be in, set up by qemu-io in one image that is then copied; write -c into
     * each through qemu-io and through us: both take the clusters without a host offset (unallocated, all zero,
     * partly zero, zeroed with unmap) and leave them compressed with a bitmap of 0, both refuse those with one, and
     * both store incompressible data as a normal write. Normal writes and write-zeroes into part of a compressed
     * cluster then copy it alike.
     */
    @Test
    void extendedL2TakesCompressedClustersAsQemuDoes() throws IOException {
        long size = 8L * CS + 1536;
        Path theirs = dir.resolve("theirs.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", theirs.toString(), Long.toString(size));
        Path setupText = file("setup.bin", textCluster(40));
        Qemu.io(theirs,
                "write -z 64k 64k", // 1: all zero, no host cluster
                "write -z " + (2 * CS + 2 * SUB) + " " + 4 * SUB, // 2: some subclusters zero
                "write -P 1 192k 4k", // 3: allocated in part
                "write -c -s " + setupText + " 256k 64k", // 4: compressed
                "write -P 2 320k 64k", "write -z -u 320k 64k", // 5: zeroed and unmapped
                "write -P 3 384k 64k", "write -z 384k 64k"); // 6: zero, host cluster kept
        Path ours = dir.resolve("ours.qcow2");
        Files.copy(theirs, ours, StandardCopyOption.REPLACE_EXISTING);

        byte[] noise = random(7, CS);
        byte[] tail = Arrays.copyOf(textCluster(8), 1536);
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults().withPool(false))) {
            for (int c = 0; c < 7; c++) {
                byte[] text = textCluster(c);
                String out = qemuIo(theirs, "write -c -s " + file("c" + c + ".bin", text) + " " + c * CS + " " + CS);
                long offset = (long) c * CS;
                if (c == 3 || c == 4 || c == 6) {
                    assertTrue(out.contains("write failed: Input/output error"), "cluster " + c + ": " + out);
                    assertThrows(ImageException.class, () -> img.writeCompressed(offset, ByteBuffer.wrap(text)),
                            "cluster " + c);
                } else {
                    assertTrue(out.contains("wrote " + CS), "cluster " + c + ": " + out);
                    img.writeCompressed(offset, ByteBuffer.wrap(text));
                }
            }
            qemuIo(theirs, "write -c -s " + file("noise.bin", noise) + " " + 7 * CS + " " + CS);
            img.writeCompressed(7L * CS, ByteBuffer.wrap(noise));
            qemuIo(theirs, "write -c -s " + file("tail.bin", tail) + " " + 8 * CS + " 1536");
            img.writeCompressed(8L * CS, ByteBuffer.wrap(tail));
        }
        List<String> dump = L2Dump.describe(ours);
        assertEquals(L2Dump.describe(theirs), dump);
        for (int c : new int[] {0, 1, 2, 5, 8}) {
            assertTrue(dump.contains(c + ": COMPRESSED alloc 00000000 zero 00000000"), c + " in " + dump);
        }
        assertTrue(Qemu.img("compare", theirs.toString(), ours.toString()).contains("Images are identical"));
        assertQemuClean(ours);
        assertQemuClean(theirs);

        // Into compressed clusters: writes inside one subcluster, zeroes in part of another cluster. A compressed
        // cluster cannot be zeroed in part (QEMU's -ENOTSUP), so the whole request is written as zeroes instead, even
        // where it covers whole clusters.
        List<GuestOp> overwrites = List.of(GuestOp.write(4100, 100, 9), GuestOp.zero(CS + 3L * SUB, 2L * SUB, false),
                GuestOp.zero(2L * CS + 3L * SUB, 2L * CS, false), GuestOp.zero(5L * CS, SUB, true),
                GuestOp.write(8L * CS + 512, 100, 10));
        Qemu.io(theirs, overwrites.stream().map(GuestOp::qemuIo).toArray(String[]::new));
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults())) {
            for (GuestOp op : overwrites) {
                op.applyTo(img);
            }
        }
        assertEquals(L2Dump.describe(theirs), L2Dump.describe(ours));
        assertTrue(Qemu.img("compare", theirs.toString(), ours.toString()).contains("Images are identical"));
        assertQemuClean(ours);
    }

    /**
     * After qemu-img snapshot -c every L2 table is shared: a compressed write into an unallocated cluster copies the
     * table first (the L1 entry gets COPIED back, the snapshot keeps the old table), while a cluster the snapshot
     * shares has a host offset and is refused; the snapshot still reads as it was taken.
     */
    @ParameterizedTest(name = "extended L2 {0}")
    @ValueSource(booleans = {false, true})
    void snapshotsShareTablesThatACompressedWriteCopies(boolean extendedL2) throws IOException {
        Path theirs = dir.resolve("theirs.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "extended_l2=" + (extendedL2 ? "on" : "off"),
                theirs.toString(), "1M");
        Qemu.io(theirs, "write -P 1 0 64k", "write -P 2 64k 4k");
        Qemu.img("snapshot", "-c", "before", theirs.toString());
        Path ours = dir.resolve("ours.qcow2");
        Files.copy(theirs, ours, StandardCopyOption.REPLACE_EXISTING);
        long sharedTable = L1Entry.l2Offset(l1Entry(ours));
        assertFalse(L1Entry.copied(l1Entry(ours)), "the snapshot shares the table");

        byte[] text = textCluster(3);
        Path textFile = file("text.bin", text);
        assertTrue(qemuIo(theirs, "write -c -s " + textFile + " 128k 64k").contains("wrote " + CS));
        assertTrue(qemuIo(theirs, "write -c -s " + textFile + " 0 64k").contains("Input/output error"));
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults())) {
            img.writeCompressed(2L * CS, ByteBuffer.wrap(text));
            assertThrows(ImageException.class, () -> img.writeCompressed(0, ByteBuffer.wrap(text)));
        }
        assertTrue(L1Entry.copied(l1Entry(ours)), "the active table is the image's own again");
        assertTrue(L1Entry.l2Offset(l1Entry(ours)) != sharedTable, "copied to a new cluster");
        assertEquals(L2Dump.describe(theirs), L2Dump.describe(ours));
        assertTrue(Qemu.img("compare", theirs.toString(), ours.toString()).contains("Images are identical"));
        assertQemuClean(ours);

        Qemu.img("snapshot", "-a", "before", ours.toString());
        Qemu.io(ours, "read -P 1 0 64k", "read -P 2 64k 4k", "read -P 0 128k 64k");
        assertQemuClean(ours);
    }

    private static long l1Entry(Path image) throws IOException {
        return ImagePoker.getLong(image, ImagePoker.header(image).l1TableOffset());
    }

    /**
     * With an external data file (raw or not, extended L2 or not) QEMU refuses every compressed write, even one it
     * would store uncompressed and the zero-length one that pads the file: "Operation not supported".
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"data_file_raw=off", "data_file_raw=on", "data_file_raw=off,extended_l2=on"})
    void dataFileImagesRefuseAsQemuDoes(String options) throws IOException {
        Path image = dir.resolve("d.qcow2");
        Qemu.imgIn(dir, "create", "-q", "-f", "qcow2", "-o", "data_file=d.data," + options, image.toString(), "1M");
        byte[] text = textCluster(5);
        byte[] noise = random(5, CS);
        for (byte[] data : List.of(text, noise)) {
            String out = qemuIo(image, "write -c -s " + file("data.bin", data) + " 0 64k");
            assertTrue(out.contains("write failed: Operation not supported"), out);
        }
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            for (byte[] data : List.of(text, noise)) {
                UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                        () -> img.writeCompressed(0, ByteBuffer.wrap(data)));
                assertEquals("Operation not supported", e.getMessage());
            }
            assertThrows(UnsupportedFeatureException.class, img::padFileToSector);
        }
        Qemu.io(image, "read -P 0 0 1M");
        Qemu.imgIn(dir, "check", image.toString());
    }
}
