package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Images made by our create pass qemu-img check with nothing reported and show the options asked for. */
class CreateInteropTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    static Stream<CreateOptions> matrix() {
        List<CreateOptions> out = new ArrayList<>();
        long size = (5L << 20) + 1536;
        for (int cs : new int[] {512, 4096, 65536, 2 << 20}) {
            out.add(CreateOptions.defaults(size).withVersion(2).withClusterSize(cs));
            for (int rb : new int[] {1, 2, 4, 8, 16, 32, 64}) {
                for (String prealloc : new String[] {"off", "metadata"}) {
                    CreateOptions o = CreateOptions.defaults(size).withClusterSize(cs).withRefcountBits(rb)
                            .withPreallocation(prealloc);
                    out.add(o);
                    out.add(o.withLazyRefcounts(true).withCompressionType("zstd"));
                    if (cs >= 16384) {
                        out.add(o.withExtendedL2(true));
                    }
                }
            }
        }
        out.add(CreateOptions.defaults(0));
        out.add(CreateOptions.defaults(1000));
        out.add(CreateOptions.defaults(64L << 30).withClusterSize(512).withRefcountBits(1));
        out.add(CreateOptions.defaults(3L << 40).withPreallocation("off"));
        return out.stream();
    }

    @ParameterizedTest
    @MethodSource("matrix")
    void passesQemuCheckAndShowsOptions(CreateOptions options) throws IOException {
        Path image = dir.resolve("new.qcow2");
        ImageCreator.create(image, options);
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
        assertTrue(check.contains("\"check-errors\": 0"), check);

        String info = Qemu.img("info", "--output=json", image.toString());
        long expectedSize = (options.size() + 511) / 512 * 512;
        assertTrue(info.contains("\"virtual-size\": " + expectedSize + ","), info);
        assertTrue(info.contains("\"cluster-size\": " + options.clusterSize() + ","), info);
        assertTrue(info.contains("\"compat\": \"" + (options.version() == 3 ? "1.1" : "0.10") + "\""), info);
        assertTrue(info.contains("\"refcount-bits\": " + options.refcountBits()), info);
        assertTrue(info.contains("\"compression-type\": \"" + options.compressionType() + "\""), info);
        if (options.version() == 3) {
            assertTrue(info.contains("\"lazy-refcounts\": " + options.lazyRefcounts()), info);
            assertTrue(info.contains("\"extended-l2\": " + options.extendedL2()), info);
        }
        if (options.size() <= 8L << 20) {
            // Reads as zeroes in qemu-io and in ours; qemu-io can write into it.
            Qemu.io(image, "read -P 0 0 " + expectedSize, "write -P 0x3c 0 " + Math.min(4096, expectedSize));
            Qemu.img("check", image.toString());
            byte[] expected = Qemu.toRaw(image, dir);
            try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
                assertEquals(-1, Images.firstDifference(expected, Images.readAll(img, 1 << 20)));
            }
        }
    }

    /** Metadata preallocation, extended L2 and external data files, in the combinations qemu-img accepts. */
    static Stream<CreateOptions> layoutsToCompare() {
        List<CreateOptions> out = new ArrayList<>();
        long size = (5L << 20) + 1536;
        for (int cs : new int[] {4096, 16384, 65536, 2 << 20}) {
            for (boolean extended : new boolean[] {false, true}) {
                if (extended && cs < 16384) {
                    continue;
                }
                for (String prealloc : new String[] {"off", "metadata"}) {
                    CreateOptions o = CreateOptions.defaults(size).withClusterSize(cs).withExtendedL2(extended)
                            .withPreallocation(prealloc);
                    out.add(o);
                    out.add(o.withDataFile("d.data", false));
                    out.add(o.withDataFile("d.data", true));
                }
            }
        }
        out.add(CreateOptions.defaults(1000).withDataFile("d.data", false));
        out.add(CreateOptions.defaults(0).withDataFile("d.data", false));
        out.add(CreateOptions.defaults(size).withRefcountBits(1).withExtendedL2(true).withPreallocation("metadata"));
        out.add(CreateOptions.defaults(size).withVersion(2).withPreallocation("metadata"));
        return out.stream();
    }

    /**
     * The same options through qemu-img create and through us give the same image file byte for byte (so the same
     * L2 entries and subcluster bitmaps), and a data file of the same length.
     */
    @ParameterizedTest
    @MethodSource("layoutsToCompare")
    void sameFilesAsQemuImgCreate(CreateOptions options) throws IOException {
        Path qemuDir = Files.createDirectory(dir.resolve("qemu"));
        Path oursDir = Files.createDirectory(dir.resolve("ours"));
        // Relative data-file names: qemu-img resolves them against its working directory, we against the image's.
        Qemu.imgIn(qemuDir, "create", "-q", "-f", "qcow2", "-o", qemuOptions(options), "x.qcow2",
                Long.toString(options.size()));
        ImageCreator.create(oursDir.resolve("x.qcow2"), options);
        assertEquals(-1, Images.firstDifference(Files.readAllBytes(qemuDir.resolve("x.qcow2")),
                Files.readAllBytes(oursDir.resolve("x.qcow2"))), "first byte where our image differs");
        assertEquals(Files.size(qemuDir.resolve("x.qcow2")), Files.size(oursDir.resolve("x.qcow2")), "file length");
        if (options.dataFile() != null) {
            assertEquals(Files.size(qemuDir.resolve("d.data")), Files.size(oursDir.resolve("d.data")),
                    "data file length");
        }
    }

    /** qemu-img create's -o for {@code o}: compat and cluster size always, the rest where not the default. */
    private static String qemuOptions(CreateOptions o) {
        List<String> opts = new ArrayList<>(List.of("compat=" + (o.version() == 3 ? "1.1" : "0.10"),
                "cluster_size=" + o.clusterSize(), "preallocation=" + o.preallocation()));
        if (o.refcountBits() != 16) {
            opts.add("refcount_bits=" + o.refcountBits());
        }
        if (o.extendedL2()) {
            opts.add("extended_l2=on");
        }
        if (o.dataFile() != null) {
            opts.add("data_file=" + o.dataFile());
            opts.add("data_file_raw=" + (o.dataFileRaw() ? "on" : "off"));
        }
        return String.join(",", opts);
    }

    @Test
    void backingFileAndFormatAreRecorded() throws IOException {
        Path base = dir.resolve("base.qcow2");
        ImageCreator.create(base, CreateOptions.defaults(2 << 20));
        Qemu.io(base, "write -P 0x61 0 2M");
        Path top = dir.resolve("top.qcow2");
        ImageCreator.create(top, CreateOptions.defaults(4 << 20).withBacking("base.qcow2", "qcow2"));
        String info = Qemu.img("info", "--output=json", top.toString());
        assertTrue(info.contains("\"backing-filename\": \"base.qcow2\""), info);
        assertTrue(info.contains("\"backing-filename-format\": \"qcow2\""), info);
        Qemu.img("check", top.toString());
        Qemu.io(top, "read -P 0x61 0 2M", "read -P 0 2M 2M");
    }

    @Test
    void externalDataFileIsCreatedBesideTheImage() throws IOException {
        Path image = dir.resolve("d.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(4 << 20).withDataFile("d.raw", true));
        assertTrue(Files.exists(dir.resolve("d.raw")));
        Qemu.imgIn(dir, "check", image.toString());
        Qemu.io(image, "write -P 0x7e 64k 64k");
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertEquals(-1, Images.firstDifference(Qemu.toRaw(image, dir), Images.readAll(img, 1 << 20)));
        }
        // data_file_raw: the data file is the disk, byte for byte.
        assertEquals(0x7e, Files.readAllBytes(dir.resolve("d.raw"))[65536]);
    }

    @Test
    void refusesWhatQemuRefuses() {
        Path image = dir.resolve("bad.qcow2");
        List<CreateOptions> bad = List.of(
                CreateOptions.defaults(1 << 20).withClusterSize(1000),
                CreateOptions.defaults(1 << 20).withClusterSize(4 << 20),
                CreateOptions.defaults(1 << 20).withVersion(2).withRefcountBits(8),
                CreateOptions.defaults(1 << 20).withVersion(2).withLazyRefcounts(true),
                CreateOptions.defaults(1 << 20).withVersion(2).withCompressionType("zstd"),
                CreateOptions.defaults(1 << 20).withExtendedL2(true).withClusterSize(8192),
                CreateOptions.defaults(1 << 20).withRefcountBits(128),
                CreateOptions.defaults(1 << 20).withCompressionType("lz4"),
                CreateOptions.defaults(1 << 20).withBacking("b", "qcow2").withPreallocation("metadata"),
                CreateOptions.defaults(1L << 62));
        for (CreateOptions o : bad) {
            assertThrows(ImageException.class, () -> ImageCreator.create(image, o), o.toString());
        }
    }
}
