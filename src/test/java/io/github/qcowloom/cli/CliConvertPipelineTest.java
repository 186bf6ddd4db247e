package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * convert's pipeline from the command line: -m and -W as qemu-img takes them, holes kept as holes in both
 * directions (a sparse raw source is not read where it has holes; a raw target gets holes where the data is zeroes),
 * and a compressed source larger than the heap converted in a JVM of small heap and direct memory.
 */
class CliConvertPipelineTest extends QemuFolderTest {
    private static final long MIB = 1 << 20;

    /** 12 MiB: data, a compressed cluster, written zeroes, holes, and data crossing the 2 MiB chunk boundaries. */
    private String source() {
        String src = path("src.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", src, "12M");
        Qemu.io(Path.of(src), "write -P 0x11 0 100k", "write -c -P 0x22 1M 64k", "write -P 0 2M 1M",
                "write -P 0x33 3968k 256k", "write -z 5M 1M", "write -P 0x44 8M 3M", "write -P 0x55 12224k 64k");
        return src;
    }

    @ParameterizedTest
    @ValueSource(strings = {"-m 1", "-m 3", "-m 16 -W", "-W", "-t writeback", "-t unsafe -m 2"})
    void parallelRequestsAndOutOfOrderWrites(String options) {
        String src = source();
        for (String format : new String[] {"raw", "qcow2"}) {
            String dst = path("dst." + format);
            List<String> args = new ArrayList<>(List.of("convert", "-O", format));
            args.addAll(List.of(options.split(" ")));
            args.addAll(List.of(src, dst));
            Cli.Run r = ours(args.toArray(String[]::new));
            assertEquals(0, r.code(), r.err());
            assertTrue(Qemu.img("compare", "-F", format, src, dst).contains("Images are identical"), options);
            if (format.equals("qcow2")) {
                Qemu.img("check", dst);
            }
            // The written zeroes at 2 MiB and the zero clusters at 5 MiB stay holes (raw) or unallocated (qcow2).
            for (QemuMap.Extent e : QemuMap.of(dst).overlapping(2 * MIB, 3 * MIB)) {
                assertFalse(e.data(), format + " " + options + ": zeroes written as data " + e);
            }
            for (QemuMap.Extent e : QemuMap.of(dst).overlapping(5 * MIB, 8 * MIB)) {
                assertFalse(e.data(), format + " " + options + ": zeroes written as data " + e);
            }
        }
    }

    @Test
    void refusesWhatQemuImgRefuses() {
        String src = source();
        for (String m : new String[] {"0", "17"}) {
            Cli.Run r = ours("convert", "-m", m, "-O", "raw", src, path("out.raw"));
            assertEquals(1, r.code());
            assertTrue(r.err().contains(
                    "Invalid number of coroutines. Allowed number of coroutines is between 1 and 16"), r.err());
            assertFalse(Files.exists(Path.of(path("out.raw"))));
        }
    }

    /** A sparse raw source (holes found with SEEK_DATA, or read as zeroes on Java 21) leaves them unallocated. */
    @Test
    void sparseRawSourceToQcow2() throws Exception {
        Path raw = dir.resolve("sparse.raw");
        byte[] data = new byte[300 << 10];
        new Random(7).nextBytes(data);
        try (FileChannel ch = FileChannel.open(raw, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(data), 1 * MIB + 4096);
            ch.write(ByteBuffer.wrap(data), 7 * MIB);
            ch.truncate(10 * MIB);
        }
        String dst = path("fromraw.qcow2");
        Cli.Run r = ours("convert", "-f", "raw", "-O", "qcow2", raw.toString(), dst);
        assertEquals(0, r.code(), r.err());
        assertTrue(Qemu.img("compare", "-f", "raw", "-F", "qcow2", raw.toString(), dst)
                .contains("Images are identical"));
        // Nothing allocated outside the clusters of the two data runs.
        long[][] holes = {{0, MIB}, {1344 << 10, 7 * MIB}, {7488 << 10, 10 * MIB}};
        for (long[] h : holes) {
            for (QemuMap.Extent e : QemuMap.of(dst).overlapping(h[0], h[1])) {
                assertFalse(e.data(), "a hole of the raw file allocated: " + e);
            }
        }
    }

    /**
     * The copy's memory does not grow with the image: 96 MiB of compressed clusters convert in a JVM with a 24 MiB
     * heap and 20 MiB of direct memory (the pipeline's 8 buffers of 2 MiB take 16).
     */
    @Test
    void compressedSourceInASmallHeap() throws Exception {
        Path raw = dir.resolve("big.raw");
        byte[] block = new byte[1 << 20];
        Random random = new Random(11);
        try (FileChannel ch = FileChannel.open(raw, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (int i = 0; i < 96; i++) {
                for (int j = 0; j < block.length; j++) {
                    block[j] = (byte) ('a' + random.nextInt(4)); // compresses to about a quarter
                }
                ch.write(ByteBuffer.wrap(block), (long) i << 20);
            }
        }
        Path compressed = dir.resolve("big.qcow2");
        Qemu.img("convert", "-c", "-f", "raw", "-O", "qcow2", raw.toString(), compressed.toString());
        Path out = dir.resolve("out.raw");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "-Xmx24m", "-XX:MaxDirectMemorySize=20m",
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "convert", "-O", "raw", compressed.toString(), out.toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("child.log").toFile()).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "convert finished");
        assertEquals(0, p.exitValue(), Files.readString(dir.resolve("child.log")));
        assertEquals(-1, Files.mismatch(raw, out), "the converted bytes");
    }
}
