package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Writes, discards and zero writes through L2 tables and data clusters that a snapshot made by qemu-img shares:
 * the tables are copied (QEMU's l2_allocate with an existing table), the clusters copied on write, and the
 * snapshot keeps its data. qemu-img check is clean after our writes and after qemu-img applies the snapshot.
 */
class SharedTableWriteTest {
    private static final int SIZE = 4 << 20;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** An image of qemu-io patterns (plain, compressed and zero clusters) with one snapshot "s1" over them. */
    private Path imageWithQemuSnapshot(String compat, int clusterSize) {
        Path image = dir.resolve("shared.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "compat=" + compat + ",cluster_size=" + clusterSize,
                image.toString(), String.valueOf(SIZE));
        Qemu.io(image, "write -P 0x11 0 1M", "write -c -P 0x22 1M " + clusterSize, "write -P 0x33 2M 512k",
                "write -z 3M 64k");
        Qemu.img("snapshot", "-c", "s1", image.toString());
        return image;
    }

    @ParameterizedTest
    @ValueSource(strings = {"1.1", "0.10"})
    void writesThroughSharedTablesLeaveTheSnapshotIntact(String compat) throws IOException {
        int clusterSize = 4096;
        Path image = imageWithQemuSnapshot(compat, clusterSize);
        byte[] atSnapshot = Qemu.toRaw(image, dir);
        byte[] model = atSnapshot.clone();
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            assertFalse(L1Entry.copied(l1Entry(image, 0)), "qemu-img's snapshot shares the first L2 table");
            write(img, model, 100, 5000, (byte) 0x44); // partial clusters: data COW inside a copied table
            write(img, model, 1 << 20, 2 * clusterSize, (byte) 0x55); // over the compressed cluster
            img.discard(2 << 20, 64 * 1024);
            Arrays.fill(model, 2 << 20, (2 << 20) + 64 * 1024, (byte) 0);
            img.writeZeroes((2 << 20) + 128 * 1024, 64 * 1024, false); // zero flag, allocation kept
            Arrays.fill(model, (2 << 20) + 128 * 1024, (2 << 20) + 192 * 1024, (byte) 0);
            img.writeZeroes((2 << 20) + 256 * 1024, 64 * 1024, true);
            Arrays.fill(model, (2 << 20) + 256 * 1024, (2 << 20) + 320 * 1024, (byte) 0);
            write(img, model, (3 << 20) + 4096, 4096, (byte) 0x66); // over a zero cluster
            assertTrue(L1Entry.copied(l1Entry(image, 0)), "our copy of the first table is ours alone (synced)");
            img.flush();
            write(img, model, 200, 300, (byte) 0x77); // in place now: the copied cluster is ours alone
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)));
        }
        assertClean(image);
        assertEquals(-1, Images.firstDifference(model, Qemu.toRaw(image, dir)));

        // qemu-img applies the snapshot: the data at snapshot time is back, and the image is still clean.
        Path copy = dir.resolve("applied.qcow2");
        Files.copy(image, copy, StandardCopyOption.REPLACE_EXISTING);
        Qemu.img("snapshot", "-a", "s1", copy.toString());
        assertClean(copy);
        assertEquals(-1, Images.firstDifference(atSnapshot, Qemu.toRaw(copy, dir)));

        // And qemu-img deletes it: the clusters only the snapshot held are freed without leaks.
        Qemu.img("snapshot", "-d", "s1", image.toString());
        assertClean(image);
        assertEquals(-1, Images.firstDifference(model, Qemu.toRaw(image, dir)));
    }

    private static void write(Qcow2Image img, byte[] model, int offset, int length, byte value)
            throws IOException {
        byte[] data = new byte[length];
        Arrays.fill(data, value);
        img.write(offset, ByteBuffer.wrap(data));
        System.arraycopy(data, 0, model, offset, length);
    }

    private static long l1Entry(Path image, int index) throws IOException {
        try (var f = java.nio.channels.FileChannel.open(image)) {
            ByteBuffer h = ByteBuffer.allocate(8);
            f.read(h, 40);
            ByteBuffer e = ByteBuffer.allocate(8);
            f.read(e, h.getLong(0) + 8L * index);
            return e.getLong(0);
        }
    }

    static void assertClean(Path image) {
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
    }
}
