package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.MixedData;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * convert -c against qemu-img convert -c on the same input: qemu-img finds our image clean and identical to the
 * source, maps the same clusters as compressed, uncompressed and absent, and the image takes as many host clusters
 * as QEMU's (the whole file is byte-identical where our codec's output is: zlib with 512-byte clusters).
 */
class CliConvertCompressedTest {
    private static final byte MARK = 0x5a;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** How qemu-img map shows one guest cluster. */
    enum Stored { COMPRESSED, UNCOMPRESSED, ABSENT }

    @ParameterizedTest(name = "{0}, {1}-byte clusters, extended L2 {2}")
    @CsvSource({"zlib, 512, off", "zlib, 4096, off", "zlib, 65536, off", "zlib, 2097152, off",
        "zstd, 512, off", "zstd, 4096, off", "zstd, 65536, off", "zstd, 2097152, off",
        "zlib, 16384, on", "zstd, 65536, on", "zlib, 2097152, on"})
    void compressesAsQemuImgDoes(String type, int clusterSize, String extendedL2) throws IOException {
        int size = Math.max(6 * clusterSize, 2 << 20) + 1536;
        byte[] raw = MixedData.generate(clusterSize, clusterSize, size);
        Arrays.fill(raw, clusterSize, 2 * clusterSize, MARK);
        byte[] noise = new byte[clusterSize];
        new SplittableRandom(clusterSize).nextBytes(noise);
        System.arraycopy(noise, 0, raw, 2 * clusterSize, clusterSize);
        Arrays.fill(raw, 3 * clusterSize, 4 * clusterSize, (byte) 0);
        Path src = dir.resolve("src.raw");
        Files.write(src, raw);
        Path ours = dir.resolve("ours.qcow2");
        Path theirs = dir.resolve("theirs.qcow2");
        String opts = "cluster_size=" + clusterSize + ",compression_type=" + type + ",extended_l2=" + extendedL2;
        Cli.Run r = ours("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", opts, src.toString(), ours.toString());
        assertEquals(0, r.code(), r.err());
        Qemu.img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", opts, src.toString(), theirs.toString());

        String check = Qemu.img("check", ours.toString()); // exit 2 or 3 on corruptions or leaks fails the test
        assertFalse(check.contains(" 0.00% compressed clusters"), check);
        assertTrue(Qemu.img("compare", "-f", "raw", "-F", "qcow2", src.toString(), ours.toString())
                .contains("Images are identical"));
        Qemu.io(ours, "read -P 0x5a " + clusterSize + " " + clusterSize);
        String info = Qemu.img("info", ours.toString());
        assertTrue(info.contains("compression type: " + type), info);
        assertTrue(info.contains("extended l2: " + extendedL2.equals("on")), info);
        List<Stored> stored = stored(ours, size, clusterSize);
        assertEquals(stored(theirs, size, clusterSize), stored, "clusters stored as qemu-img stores them");
        assertEquals(Stored.COMPRESSED, stored.get(1), "the marked cluster");
        assertEquals(Stored.UNCOMPRESSED, stored.get(2), "random data does not shrink and is stored as it is");
        assertEquals(Stored.ABSENT, stored.get(3), "zero clusters stay unallocated");
        Path plain = dir.resolve("plain.qcow2");
        Qemu.img("convert", "-f", "raw", "-O", "qcow2", "-o", opts, src.toString(), plain.toString());
        assertTrue(Files.size(ours) < Files.size(plain), "smaller than without -c: " + Files.size(ours));

        long ourClusters = hostClusters(ours);
        long theirClusters = hostClusters(theirs);
        if (type.equals("zlib") && clusterSize == 512) {
            // One deflate chunk per cluster: our streams, and so the whole file, are QEMU's.
            assertArrayEquals(Files.readAllBytes(theirs), Files.readAllBytes(ours), "byte-identical image");
        } else if (type.equals("zstd")) {
            assertEquals(theirClusters, ourClusters, "host clusters");
            assertEquals(Files.size(theirs), Files.size(ours), "file length");
        } else {
            // Our zlib streams flush every 4 KiB to stay inside QEMU's inflate window, so they run a few per cent
            // larger (the packing itself is QEMU's: CompressedLayoutTest).
            assertTrue(ourClusters <= theirClusters + theirClusters / 10 + 1,
                    "host clusters: ours " + ourClusters + ", QEMU's " + theirClusters);
        }
    }

    /**
     * A target with an external data file takes no compressed writes: the image is created, then the first cluster
     * written fails with qemu-img's message and exit code.
     */
    @Test
    void dataFileTargetFailsAsInQemuImg() throws IOException {
        byte[] raw = new byte[4 << 20];
        byte[] text = MixedData.generate(3, 65536, 4 << 20);
        System.arraycopy(text, 0, raw, 3 << 16, 65536);
        Path src = dir.resolve("src.raw");
        Files.write(src, raw);
        Qemu.Result theirs = Qemu.exec(List.of("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
                "data_file=theirs.data", src.toString(), dir.resolve("theirs.qcow2").toString()), dir);
        Cli.Run ours = ours("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "data_file=ours.data", src.toString(),
                dir.resolve("ours.qcow2").toString());
        assertEquals(1, theirs.exitCode());
        assertEquals(theirs.exitCode(), ours.code());
        assertEquals("qemu-img: error while writing at byte 196608: Operation not supported", theirs.stderr().strip());
        assertEquals(theirs.stderr().strip().replace("qemu-img: ", "qcow2-loom: "), ours.err().strip());
        assertTrue(Files.exists(dir.resolve("ours.data")), "created before the first write, as by qemu-img");
    }

    /**
     * convert -n -c into an image made beforehand, as qemu-img's: zeroes written as zeroes, every other cluster
     * compressed (or stored as it is where it does not shrink), and a cluster the target holds already refuses its
     * compressed data. The clusters are stored alike (compressed, as they are, zero or absent); with zstd, whose
     * streams are QEMU's, they land where qemu-img puts them too, but where the target held data that the copy zeroes
     * (ZERO_DATA: a cluster the source has zeroes in): QEMU reuses the cluster it gives back at once, ours only after
     * a flush has made its removal durable. (Our zlib streams run a little longer: see compressesAsQemuImgDoes.)
     */
    @ParameterizedTest(name = "target {0}, written first: {1}, options {2}")
    @CsvSource(delimiter = '|', value = {
        "'' | '' | ''",
        "compression_type=zstd | '' | ''",
        "compression_type=zstd | '' | -S 0",
        "compression_type=zstd | '' | --target-is-zero",
        "compat=0.10 | '' | ''",
        "cluster_size=4096,compression_type=zstd | '' | ''",
        "cluster_size=512,compression_type=zstd | '' | -S 0",
        "extended_l2=on,compression_type=zstd | '' | ''",
        "compression_type=zstd | write -z 0 4M | ''",
        "compression_type=zstd | write -z -u 0 4M | --target-is-zero",
        "compression_type=zstd | write -P 7 ZERO_DATA 64k | ''",
        "'' | write -P 7 0 4M | ''",
        "'' | write -c -P 7 0 4M | ''"})
    void intoAnExistingImageAsQemuImg(String create, String written, String options) throws IOException {
        int size = 4 << 20;
        int cluster = 65536;
        byte[] raw = MixedData.generate(7, cluster, size);
        int zeroData = firstCluster(c -> MixedData.kind(7, c) == MixedData.Kind.ZERO) * cluster;
        int firstData = firstCluster(c -> MixedData.kind(7, c) != MixedData.Kind.ZERO) * cluster;
        written = written.replace("ZERO_DATA", Integer.toString(zeroData));
        Path src = dir.resolve("src.raw");
        Files.write(src, raw);
        Path theirTarget = dir.resolve("theirs.qcow2");
        Path ourTarget = dir.resolve("ours.qcow2");
        for (Path t : List.of(theirTarget, ourTarget)) {
            List<String> args = new ArrayList<>(List.of("create", "-q", "-f", "qcow2"));
            if (!create.isEmpty()) {
                args.addAll(List.of("-o", create));
            }
            args.addAll(List.of(t.toString(), Integer.toString(size)));
            Qemu.img(args.toArray(String[]::new));
            if (!written.isEmpty()) {
                Qemu.io(t, written);
            }
        }
        List<String> convert = new ArrayList<>(List.of("convert", "-n", "-c"));
        if (!options.isEmpty()) {
            convert.addAll(List.of(options.split(" ")));
        }
        convert.addAll(List.of("-f", "raw", "-O", "qcow2", src.toString()));
        Cli.Both both = Cli.intoTargets(convert, theirTarget.toString(), ourTarget.toString());
        Qemu.Result theirs = both.theirs();
        Cli.Run ours = both.mine();

        Qemu.img("check", ourTarget.toString()); // exit 2 or 3 on corruptions or leaks fails the test
        if (written.endsWith(" 0 4M") && !written.contains("-z")) {
            // Data everywhere: QEMU's compressed write fails at the first data cluster with EIO, ours with why.
            assertEquals("qemu-img: error while writing at byte " + firstData + ": Input/output error",
                    theirs.stderr().strip());
            assertEquals(1, theirs.exitCode());
            assertEquals(1, ours.code(), ours.err());
            assertTrue(ours.err().contains(String.format("Compressed write to guest offset %#x refused: the cluster"
                    + " is already allocated", firstData)), ours.err());
            Qemu.io(ourTarget, "read -P 7 " + firstData + " 64k");
            return;
        }
        assertEquals(0, theirs.exitCode(), theirs.stderr());
        assertEquals(0, ours.code(), ours.err());
        assertTrue(Qemu.img("compare", "-f", "raw", "-F", "qcow2", src.toString(), ourTarget.toString())
                .contains("Images are identical"));
        String theirMap = Qemu.img("map", "--output=json", theirTarget.toString());
        String ourMap = Qemu.img("map", "--output=json", ourTarget.toString());
        if (create.contains("zstd") && !written.startsWith("write -P")) {
            assertEquals(theirMap, ourMap, "clusters placed and stored as qemu-img's");
        } else {
            String offset = ", \"offset\": \\d+";
            assertEquals(theirMap.replaceAll(offset, ""), ourMap.replaceAll(offset, ""), "clusters stored alike");
        }
    }

    private static int firstCluster(java.util.function.IntPredicate test) {
        int c = 0;
        while (!test.test(c)) {
            c++;
        }
        return c;
    }

    /** With -B only what differs from the backing file is written, compressed; equal clusters show through. */
    @Test
    void withBackingWritesOnlyWhatDiffers() throws IOException {
        String base = dir.resolve("base.qcow2").toString();
        Qemu.img("create", "-q", "-f", "qcow2", base, "8M");
        Qemu.io(Path.of(base), "write -P 0x11 0 8M");
        String src = dir.resolve("top.qcow2").toString();
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", src);
        Qemu.io(Path.of(src), "write -P 0x22 1M 192k", "write -z 4M 1M", "write -P 0x11 6M 64k");
        String dst = dir.resolve("dst.qcow2").toString();
        Cli.Run r = ours("convert", "-c", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", src, dst);
        assertEquals(0, r.code(), r.err());

        Qemu.img("check", dst);
        assertTrue(Qemu.img("compare", src, dst).contains("Images are identical"));
        for (QemuMap.Extent e : QemuMap.of(dst).extents()) {
            boolean written = e.start() >= (1 << 20) && e.start() < (1 << 20) + (192 << 10)
                    || e.start() >= (4 << 20) && e.start() < (5 << 20);
            assertEquals(written ? 0 : 1, e.depth(), "only the differing clusters are the target's own: " + e);
        }
        List<Stored> stored = stored(Path.of(dst), 8 << 20, 65536);
        for (int c = 16; c < 19; c++) {
            assertEquals(Stored.COMPRESSED, stored.get(c), "differing data is compressed: cluster " + c);
        }
        for (int c = 64; c < 80; c++) {
            assertEquals(Stored.ABSENT, stored.get(c), "zeroes over backing data take no host cluster: " + c);
        }
        Qemu.io(Path.of(dst), "read -P 0x22 1M 192k", "read -P 0 4M 1M", "read -P 0x11 5M 3M");
    }

    /** Data clusters with an "offset" are stored as they are; data without one is compressed. */
    private static final Pattern EXTENT = Pattern.compile(
            "\"start\": (\\d+), \"length\": (\\d+), \"depth\": (\\d+),[^}]*?\"data\": (true|false)(, \"offset\": \\d+)?");

    private static List<Stored> stored(Path image, long size, int clusterSize) {
        List<Stored> out = new ArrayList<>();
        Matcher m = EXTENT.matcher(Qemu.img("map", "--output=json", image.toString()));
        while (m.find()) {
            long start = Long.parseLong(m.group(1));
            long end = start + Long.parseLong(m.group(2));
            boolean data = Boolean.parseBoolean(m.group(4)) && Integer.parseInt(m.group(3)) == 0;
            Stored s = !data ? Stored.ABSENT : m.group(5) == null ? Stored.COMPRESSED : Stored.UNCOMPRESSED;
            for (long c = start / clusterSize; c * clusterSize < end; c++) {
                out.add(s);
            }
        }
        assertEquals((size + clusterSize - 1) / clusterSize, out.size(), "map covers the disk cluster by cluster");
        return out;
    }

    /** Host clusters with a non-zero refcount. */
    private static long hostClusters(Path image) throws IOException {
        try (FileStorage f = FileStorage.open(image, true, false)) {
            Header h = ImageMetadata.readHeader(f);
            RefcountTable t = new RefcountTable(f, h, new TableCache(f, 512, 16));
            long n = 0;
            for (long c = 0; c <= f.size() >>> h.clusterBits(); c++) {
                if (t.get(new HostCluster(c)) > 0) {
                    n++;
                }
            }
            assertFalse(n == 0);
            return n;
        }
    }
}
