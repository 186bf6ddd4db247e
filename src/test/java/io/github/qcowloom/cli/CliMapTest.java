package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.nio.channels.FileChannel;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code map} side by side with qemu-img map 7.2 on the same images: the same bytes in both layouts and the same
 * exit code. Ours adds QEMU 8.2's {@code "compressed"} field, which is dropped before comparing and checked alone.
 */
class CliMapTest {
    private static final Pattern COMPRESSED = Pattern.compile(", \"compressed\": (true|false)");

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private Path qcow2(String name, String options, String size) {
        Path img = dir.resolve(name);
        List<String> args = new ArrayList<>(List.of("create", "-q", "-f", "qcow2"));
        if (!options.isEmpty()) {
            args.addAll(List.of("-o", options));
        }
        args.addAll(List.of(img.toString(), size));
        Qemu.img(args.toArray(String[]::new));
        return img;
    }

    /** Both layouts of ours equal qemu-img's for {@code image} (and the extra arguments); returns our JSON. */
    private static String assertSameMap(String image, String... extra) {
        String json = null;
        for (String output : List.of("json", "human")) {
            List<String> args = new ArrayList<>(List.of("map", "--output=" + output));
            args.addAll(List.of(extra));
            args.add(image);
            List<String> qemu = new ArrayList<>(List.of("qemu-img"));
            qemu.addAll(args);
            Qemu.Result theirs = Qemu.exec(qemu);
            Cli.Run mine = ours(args.toArray(String[]::new));
            assertEquals(theirs.exitCode(), mine.code(), args + ": " + theirs.stderr() + " / " + mine.err());
            if (output.equals("json")) {
                assertEquals(theirs.stdout(), COMPRESSED.matcher(mine.out()).replaceAll(""), args.toString());
                assertEquals(mine.out().split("\\{").length - 1, count(COMPRESSED.matcher(mine.out())),
                        "every entry has the compressed field: " + mine.out());
                json = mine.out();
            } else {
                assertEquals(theirs.stdout(), mine.out(), args.toString());
            }
        }
        return json;
    }

    private static long count(Matcher m) {
        return m.results().count();
    }

    @Test
    void emptyImageAndRangesOfIt() {
        String img = qcow2("empty.qcow2", "", "64M").toString();
        assertSameMap(img);
        assertSameMap(img, "--start-offset", "1M", "--max-length", "3M");
        // Past the end: qemu-img prints one empty entry with every flag false.
        assertSameMap(img, "--start-offset", "100M");
        assertSameMap(img, "--max-length", "0");
    }

    @Test
    void partlyWrittenZeroedAndDiscardedClusters() {
        Path img = qcow2("part.qcow2", "", "16M");
        Qemu.io(img, "write -P 1 0 64k", "write -P 2 64k 64k", "write -P 3 1M 4k", "write -P 4 2M 256k",
                "write -z 2176k 64k", "write -z -u 2048k 64k", "write -z 4M 128k", "discard 1M 64k",
                "write -P 5 8M 8k", "write -P 6 15M 1M");
        assertSameMap(img.toString());
        assertSameMap(img.toString(), "--start-offset", "1000", "--max-length", "70000");
        assertSameMap(img.toString(), "--start-offset", "2100k", "--max-length", "6M");
        assertSameMap(img.toString(), "--start-offset", "15M", "--max-length", "100M");
    }

    @Test
    void version2ImageWithDiscardedClusters() {
        Path img = qcow2("v2.qcow2", "compat=0.10,cluster_size=4k", "4M");
        Qemu.io(img, "write -P 2 0 12k", "write -z 4k 4k", "discard 8k 4k", "write -P 1 64k 4k", "write -z 128k 8k",
                "write -P 3 1M 1M", "discard 1536k 64k");
        assertSameMap(img.toString());
    }

    @ParameterizedTest
    @ValueSource(ints = {512, 4096, 2 << 20})
    void clusterSizes(int clusterSize) {
        Path img = qcow2("cs.qcow2", "cluster_size=" + clusterSize, "8M");
        Qemu.io(img, "write -P 1 0 1k", "write -P 1 40k 512", "write -P 2 100k 30k", "write -z 200k 8k",
                "write -P 3 2M 3M", "discard 3M 512k", "write -P 4 7M 4k");
        assertSameMap(img.toString());
        assertSameMap(img.toString(), "--start-offset", "33k", "--max-length", "5M");
    }

    /** Overlays bigger than their backing files, named relative to the working directory as a user would. */
    @Test
    void backingChainOfDepthOneAndTwo() {
        Path base = qcow2("base.qcow2", "", "4M");
        Qemu.io(base, "write -P 1 0 192k", "write -P 5 2M 64k");
        Path mid = dir.resolve("mid.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid.toString(), "6M");
        Qemu.io(mid, "write -P 2 64k 64k", "write -z 2M 32k", "write -z 3M 64k", "discard 0 64k");
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top.toString(), "8M");
        Qemu.io(top, "write -P 3 128k 4k", "write -P 4 5M 64k", "write -z 6M 64k");
        String relative = Path.of("").toAbsolutePath().relativize(top).toString();
        assertSameMap(relative);
        assertSameMap(top.toString());
        assertSameMap(mid.toString(), "--start-offset", "60k");
        assertSameMap(top.toString(), "--start-offset", "3M", "--max-length", "4M");
    }

    @Test
    void rawImagesAndARawBackingFile() throws IOException {
        // Fully written: raw holes would be "zero" in qemu-img (SEEK_DATA), which Java cannot ask for.
        Path raw = dir.resolve("disk.raw");
        byte[] data = new byte[3 << 20];
        new Random(3).nextBytes(data);
        Files.write(raw, data);
        assertSameMap(raw.toString());
        assertSameMap(raw.toString(), "--start-offset", "4097", "--max-length", "1M");
        Path top = dir.resolve("over-raw.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", raw.toString(), "-F", "raw", top.toString(), "4M");
        Qemu.io(top, "write -P 7 1M 64k");
        assertSameMap(top.toString());
    }

    /** Holes of a sparse raw file are "zero", as qemu-img finds them with SEEK_DATA and SEEK_HOLE. */
    @Test
    void holesOfASparseRawFile() throws IOException {
        Path raw = dir.resolve("sparse.raw");
        byte[] data = new byte[256 << 10];
        new Random(5).nextBytes(data);
        try (FileChannel ch = FileChannel.open(raw, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(data), 1 << 20);
            ch.write(ByteBuffer.wrap(data), 3 << 20);
            ch.truncate(6 << 20);
        }
        assertSameMap(raw.toString());
        assertSameMap(raw.toString(), "--start-offset", "1100k", "--max-length", "3M");
    }

    @Test
    void compressedClustersFromQemuImgConvert() throws IOException {
        Path raw = dir.resolve("src.raw");
        byte[] data = new byte[2 << 20];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i % 251 < 100 ? i / 4096 : 0);
        }
        Files.write(raw, data);
        Path img = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", raw.toString(), img.toString());
        Qemu.io(img, "write -P 9 512k 64k", "write -z 1M 64k");
        String json = assertSameMap(img.toString());
        // Data without an offset is exactly what is compressed; the rest is not.
        List<String> entries = json.lines().toList();
        assertTrue(entries.stream().anyMatch(e -> e.contains("\"compressed\": true")), json);
        for (String e : entries) {
            boolean noOffsetData = e.contains("\"data\": true") && !e.contains("\"offset\"");
            assertEquals(noOffsetData, e.contains("\"compressed\": true"), e);
        }
        // The human table cannot show compressed clusters: both stop with exit code 1 after the same lines.
        Cli.Run human = ours("map", img.toString());
        assertEquals(1, human.code());
        assertTrue(human.err().contains("File contains external, encrypted or compressed clusters."), human.err());
    }

    @Test
    void extendedL2WithPartlyAllocatedClusters() {
        Path img = qcow2("x.qcow2", "extended_l2=on,cluster_size=64k", "4M");
        Qemu.io(img, "write -P 1 0 4k", "write -P 2 8k 2k", "write -z 16k 2k", "write -P 3 64k 64k",
                "write -P 4 126k 2k", "write -P 5 128k 2k", "write -z 1M 64k", "write -P 6 2M 64k",
                "write -z 2M 4k", "discard 2060k 8k");
        assertSameMap(img.toString());
        assertSameMap(img.toString(), "--start-offset", "5k", "--max-length", "200k");
        // Over a backing file, unallocated subclusters of an allocated cluster show the backing file's data.
        Path top = dir.resolve("x-top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", img.toString(), "-F", "qcow2",
                top.toString(), "4M");
        Qemu.io(top, "write -P 7 6k 4k", "write -P 8 2M 2k", "write -z 3M 32k");
        assertSameMap(top.toString());
    }

    @Test
    void externalDataFile() {
        Path data = dir.resolve("d.data");
        Path img = qcow2("d.qcow2", "data_file=" + data, "4M");
        Qemu.io(img, "write -P 1 0 64k", "write -P 2 1M 128k", "write -z 512k 64k", "write -P 3 3M 4k");
        assertSameMap(img.toString());
        assertSameMap(img.toString(), "--start-offset", "1100k");
    }

    /**
     * Preallocated with metadata alone, an image maps its clusters to host bytes never written: qemu-img looks into
     * the file there (BDRV_BLOCK_RECURSE) and reports its holes as data that reads as zeroes, which the human table
     * leaves out, and cuts runs where the file's holes begin and end.
     */
    @ParameterizedTest
    @ValueSource(strings = {"preallocation=metadata", "preallocation=metadata,cluster_size=4k",
            "preallocation=metadata,extended_l2=on", "preallocation=metadata,compat=0.10"})
    void metadataPreallocatedImages(String options) {
        Path img = qcow2("p.qcow2", options, "64M");
        Qemu.io(img, "write -P 1 1M 1M", "write -P 2 5M 4k", "write -P 3 9M 6k", "write -P 4 9000k 1k",
                "write -z 12M 64k", "discard 20M 128k", "write -z -u 30M 64k", "write -P 5 63M 1M");
        String json = assertSameMap(img.toString());
        // With extended L2, preallocated subclusters are unallocated, not data: nothing to look into.
        assertEquals(!options.contains("extended_l2"), json.contains("\"zero\": true, \"data\": true"), json);
        assertSameMap(img.toString(), "--start-offset", "4M", "--max-length", "6M");
        assertSameMap(img.toString(), "--start-offset", "9001k");
    }

    /** The same for an image this driver preallocated. */
    @Test
    void ourOwnMetadataPreallocatedImage() {
        Path img = dir.resolve("own.qcow2");
        Cli.succeeding("create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", img.toString(), "64M");
        Qemu.io(img, "write -P 1 1M 1M", "write -P 2 5M 4k", "write -z 12M 64k");
        assertSameMap(img.toString());
    }

    /**
     * qemu-img looks into the file only where the image looks preallocated with metadata alone (its clusters with a
     * refcount outnumber those the file occupies by a ninth, and by two). Punching the host bytes of one written
     * cluster after another crosses that line; both tools must cross it at the same cluster.
     */
    @Test
    void punchedClustersAroundQemusThreshold() {
        Path img = qcow2("t.qcow2", "", "4M");
        Qemu.io(img, "write -P 1 0 4M");
        Matcher first = Pattern.compile("\"offset\": (\\d+)").matcher(Qemu.img("map", "--output=json",
                img.toString()));
        assertTrue(first.find());
        long host = Long.parseLong(first.group(1));
        List<Boolean> lookedInto = new ArrayList<>();
        for (int k = 0; k < 12; k++) {
            Qemu.run(List.of("fallocate", "-p", "-o", Long.toString(host + k * 65536L), "-l", "65536",
                    img.toString()));
            lookedInto.add(assertSameMap(img.toString()).contains("\"zero\": true, \"data\": true"));
        }
        assertEquals(List.of(false, true), lookedInto.stream().distinct().toList(),
                "the line is crossed once, within these punches: " + lookedInto);
    }

    @Test
    void badArgumentsFail() {
        String img = qcow2("e.qcow2", "", "1M").toString();
        assertEquals(1, ours("map", "--output=xml", img).code());
        assertEquals(1, ours("map", "--start-offset", "-5", img).code());
        assertFalse(ours("map", dir.resolve("missing.qcow2").toString()).code() == 0);
    }
}
