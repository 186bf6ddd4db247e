package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;

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

/**
 * Images made and written by the real qemu-img and qemu-io read back through our read path exactly as
 * {@code qemu-img convert -O raw} gives them.
 */
class QemuImageReadTest {
    /** Not a multiple of any cluster size from 4 KiB up: the last cluster is partial. */
    private static final long SIZE = (6L << 20) + 3072;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** One qemu-img create option set. */
    record Config(String compat, int clusterSize, int refcountBits, String variant) {
        String options() {
            String o = "compat=" + compat + ",cluster_size=" + clusterSize + ",refcount_bits=" + refcountBits;
            return switch (variant) {
                case "extended_l2" -> o + ",extended_l2=on";
                case "lazy_refcounts" -> o + ",lazy_refcounts=on";
                default -> o;
            };
        }

        @Override
        public String toString() {
            return options();
        }
    }

    static Stream<Config> matrix() {
        List<Config> out = new ArrayList<>();
        for (int cs : new int[] {512, 4096, 65536, 2 << 20}) {
            out.add(new Config("0.10", cs, 16, "plain"));
            for (int rb : new int[] {1, 16, 64}) {
                out.add(new Config("1.1", cs, rb, "plain"));
                out.add(new Config("1.1", cs, rb, "lazy_refcounts"));
                if (cs >= 16384) {
                    out.add(new Config("1.1", cs, rb, "extended_l2"));
                }
            }
        }
        return out.stream();
    }

    /** Patterns at assorted offsets: whole and partial clusters, subclusters, zeroes, discards, the last byte. */
    private static String[] writes(long size) {
        return new String[] {
            "write -P 0x11 0 4k",
            "write -P 0x22 70k 3k",
            "write -P 0x33 1m 200k",
            "write -P 0x44 1100k 1k",
            "write -z 1050k 64k",
            "write -P 0x55 2m 128k",
            "write -z -u 2m 64k",
            "write -P 0x66 3m 256k",
            "discard 3m 128k",
            "write -P 0x77 4m 512",
            "write -P 0x78 4100k 2k",
            "write -P 0x99 " + (size - 512) + " 512",
        };
    }

    private void assertReadsLikeQemu(Path image) throws IOException {
        byte[] expected = Qemu.toRaw(image, dir);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertEquals(expected.length, img.size(), "virtual size");
            byte[] actual = Images.readAll(img, 192 * 1024 + 512);
            assertEquals(-1, Images.firstDifference(expected, actual), "first differing byte of " + image);
        }
    }

    @ParameterizedTest
    @MethodSource("matrix")
    void readsWhatQemuWrote(Config config) throws IOException {
        Path image = dir.resolve("img.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", config.options(), image.toString(), Long.toString(SIZE));
        Qemu.io(image, writes(SIZE));
        assertReadsLikeQemu(image);
    }

    @ParameterizedTest
    @MethodSource("compressedConfigs")
    void readsCompressedClusters(String compression, int clusterSize) throws IOException {
        Path raw = dir.resolve("src.raw");
        Qemu.img("create", "-q", "-f", "raw", raw.toString(), "4M");
        Qemu.ioFormat("raw", raw, "write -P 0x5a 0 1m", "write -P 0x00 1m 64k", "write -P 0x13 1200k 100k",
                "write -P 0xfe 3m 1m");
        Path image = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
                "compression_type=" + compression + ",cluster_size=" + clusterSize, raw.toString(), image.toString());
        assertReadsLikeQemu(image);
    }

    static Stream<org.junit.jupiter.params.provider.Arguments> compressedConfigs() {
        return Stream.of("zlib", "zstd").flatMap(c -> Stream.of(4096, 65536, 2 << 20)
                .map(cs -> org.junit.jupiter.params.provider.Arguments.of(c, cs)));
    }

    @Test
    void readsBackingChainQcow2OverQcow2OverRaw() throws IOException {
        Path base = dir.resolve("base.raw");
        Qemu.img("create", "-q", "-f", "raw", base.toString(), "4M");
        Qemu.ioFormat("raw", base, "write -P 0xa1 0 4M");
        Path mid = dir.resolve("mid.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", mid.toString(), "6M");
        Qemu.io(mid, "write -P 0xb2 64k 64k", "write -z 1m 64k", "discard 2m 64k", "write -P 0xb3 5m 64k");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "mid.qcow2", "-F", "qcow2",
                top.toString(), "8M");
        Qemu.io(top, "write -P 0xc3 100k 8k", "write -z 64k 4k", "write -P 0xc4 7m 4k");
        assertReadsLikeQemu(top);
    }

    @Test
    void readsBackingWithoutFormatByProbing() throws IOException {
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "2M");
        Qemu.io(base, "write -P 0x42 0 2M");
        Path top = dir.resolve("top.qcow2");
        // compat=0.10 images have no backing-format extension when qemu-img is not told the format.
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-u", "-b", "base.qcow2", "-F", "qcow2",
                top.toString(), "2M");
        Qemu.io(top, "write -P 0x43 4k 4k");
        assertReadsLikeQemu(top);
    }

    @ParameterizedTest
    @MethodSource("dataFileModes")
    void readsExternalDataFile(boolean raw) throws IOException {
        Path image = dir.resolve("d.qcow2");
        Qemu.imgIn(dir, "create", "-q", "-f", "qcow2", "-o", "data_file=d.data,data_file_raw=" + (raw ? "on" : "off"),
                image.toString(), "4M");
        Qemu.io(image, "write -P 0x31 0 64k", "write -P 0x32 1m 3k", "write -z 2m 64k", "write -P 0x33 3m 1m");
        assertReadsLikeQemu(image);
    }

    static Stream<Boolean> dataFileModes() {
        return Stream.of(false, true);
    }

    @Test
    void readsZeroPreallocatedAndMetadataPreallocatedImages() throws IOException {
        Path image = dir.resolve("p.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", image.toString(), "3M");
        Qemu.io(image, "write -P 0x21 0 128k", "write -z 64k 64k");
        assertReadsLikeQemu(image);
        assertEquals(true, Files.size(image) > (3L << 20));
    }
}
