package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Writes to images whose data lives in an external data file (data_file, with and without data_file_raw, with and
 * without extended L2), checked by the real qemu-img and qemu-io 7.2: the data goes to the data file at the guest
 * offset and has no refcounts in the image file, the image stays clean and equal to a byte-array model, a raw
 * data file is the guest disk byte for byte, and we and qemu-io can take turns.
 */
class DataFileWriteInteropTest {
    private static final long SIZE = (3L << 20) + 1536;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** One data-file layout; {@code ours}: made by our ImageCreator, else by qemu-img. */
    record Layout(boolean raw, boolean extendedL2, int clusterSize, boolean backing, boolean ours) {
        @Override
        public String toString() {
            return (raw ? "data_file_raw" : "data_file") + (extendedL2 ? ", extended_l2" : "") + ", cluster "
                    + clusterSize + (backing ? ", backing" : "") + (ours ? ", created by us" : "");
        }
    }

    static Stream<Layout> layouts() {
        return Stream.of(
                new Layout(false, false, 65536, false, false),
                new Layout(true, false, 65536, false, false),
                new Layout(false, true, 65536, false, false),
                new Layout(true, true, 16384, false, false),
                new Layout(false, false, 4096, true, false),
                new Layout(false, true, 65536, true, false),
                new Layout(false, false, 65536, false, true),
                new Layout(true, true, 65536, false, true));
    }

    private Path create(Layout l) throws IOException {
        Path image = dir.resolve("d.qcow2");
        if (l.ours()) {
            ImageCreator.create(image, CreateOptions.defaults(SIZE).withClusterSize(l.clusterSize())
                    .withExtendedL2(l.extendedL2()).withDataFile("d.data", l.raw()));
            return image;
        }
        List<String> args = new ArrayList<>(List.of("create", "-q", "-f", "qcow2", "-o", "cluster_size="
                + l.clusterSize() + ",extended_l2=" + (l.extendedL2() ? "on" : "off") + ",data_file=d.data"
                + ",data_file_raw=" + (l.raw() ? "on" : "off")));
        if (l.backing()) {
            args.addAll(List.of("-b", "base.qcow2", "-F", "qcow2"));
        }
        args.addAll(List.of(image.toString(), Long.toString(SIZE)));
        Qemu.imgIn(dir, args.toArray(String[]::new));
        return image;
    }

    /** The model's start: the backing file's data (2 MiB of it written), or zeroes. */
    private byte[] startModel(Layout l) throws IOException {
        if (!l.backing()) {
            return new byte[(int) SIZE];
        }
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "2M");
        Qemu.io(base, "write -P 0x61 0 2M");
        return Arrays.copyOf(Qemu.toRaw(base, dir), (int) SIZE);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("layouts")
    void randomRequestsMatchTheModel(Layout l) throws IOException {
        byte[] model = startModel(l);
        Path image = create(l);
        long imageBefore = Files.size(image);
        List<GuestOp> ops = GuestOp.random(l.hashCode(), 80, SIZE, l.clusterSize());
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            for (int i = 0; i < ops.size(); i++) {
                ops.get(i).applyTo(img);
                ops.get(i).applyTo(model, l.clusterSize());
                if (i % 16 == 15) {
                    img.flush();
                }
            }
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)), ops.toString());
        }
        assertCleanAndEqual(image, model, l.raw());
        // No data cluster is allocated in the image file: it grew by L2 tables at most.
        long tables = (SIZE / l.clusterSize() * (l.extendedL2() ? 16 : 8) / l.clusterSize() + 1) * l.clusterSize();
        assertTrue(Files.size(image) <= Math.max(imageBefore, 6L * l.clusterSize()) + tables,
                "image file " + Files.size(image) + " bytes (was " + imageBefore + ")");
    }

    /** We and qemu-io take turns on one data-file image; after every turn it is clean and equals the model. */
    @ParameterizedTest(name = "raw {0}")
    @MethodSource("rawModes")
    void alternatingWithQemuIoStaysConsistent(boolean raw) throws IOException {
        Layout l = new Layout(raw, false, 65536, false, false);
        Path image = create(l);
        byte[] model = new byte[(int) SIZE];
        for (int round = 0; round < 3; round++) {
            try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
                for (GuestOp op : GuestOp.random(round, 25, SIZE, l.clusterSize())) {
                    op.applyTo(img);
                    op.applyTo(model, l.clusterSize());
                }
            }
            List<GuestOp> theirs = GuestOp.random(100 + round, 15, SIZE, l.clusterSize());
            Qemu.io(image, theirs.stream().map(GuestOp::qemuIo).toArray(String[]::new));
            theirs.forEach(op -> op.applyTo(model, l.clusterSize()));
            assertCleanAndEqual(image, model, raw);
        }
    }

    static Stream<Boolean> rawModes() {
        return Stream.of(false, true);
    }

    /** Growing a data_file_raw image grows the raw file with it: it stays the whole guest disk. */
    @Test
    void resizeGrowsARawDataFile() throws IOException {
        Path image = create(new Layout(true, false, 65536, false, false));
        byte[] model = new byte[(int) SIZE];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            img.write(SIZE - 1000, ByteBuffer.wrap(filled(1000, 0x33)));
            img.resize(SIZE + (1L << 20));
            img.write(SIZE + 4096, ByteBuffer.wrap(filled(5000, 0x34)));
        }
        model = Arrays.copyOf(model, (int) (SIZE + (1L << 20)));
        Arrays.fill(model, (int) SIZE - 1000, (int) SIZE, (byte) 0x33);
        Arrays.fill(model, (int) SIZE + 4096, (int) SIZE + 4096 + 5000, (byte) 0x34);
        assertCleanAndEqual(image, model, true);
    }

    /** Writes need the data file: an image whose data file is not followed opens read-only only. */
    @Test
    void readWriteOpenNeedsTheDataFile() throws IOException {
        Path image = create(new Layout(false, false, 65536, false, false));
        UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                () -> Qcow2Image.open(image, OpenOptions.readWriteDefaults().withFollowReferences(false)).close());
        assertEquals("external data file not opened", e.feature());
        Qcow2Image.open(image, OpenOptions.readOnlyDefaults().withFollowReferences(false)).close();
    }

    private static byte[] filled(int n, int pattern) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) pattern);
        return b;
    }

    private void assertCleanAndEqual(Path image, byte[] model, boolean raw) throws IOException {
        // qemu-img 7.2 resolves a relative data-file name against its working directory.
        String check = Qemu.imgIn(dir, "check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
        Path expected = dir.resolve("model.raw");
        Files.write(expected, model);
        Qemu.imgIn(dir, "compare", "-f", "qcow2", "-F", "raw", image.toString(), expected.toString());
        if (raw) {
            // QEMU makes the raw file a whole number of clusters long; the guest disk is its start.
            byte[] file = Files.readAllBytes(dir.resolve("d.data"));
            assertTrue(file.length >= model.length, "raw data file of " + file.length + " bytes");
            assertArrayEquals(model, Arrays.copyOf(file, model.length), "the raw data file is the disk");
        }
    }
}
