package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.testing.MixedData;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * convert -C against qemu-img convert -C: the same contents and the same allocation, for sources whose data the
 * offload copies from their files (a raw file with holes, a qcow2 image, a chain, an external data file) and one it
 * stops at (compressed clusters), into new raw and qcow2 targets and, with -n, existing ones. Data is copied whole,
 * its blocks of zeroes allocated, where a copy without -C leaves them holes.
 */
class CliConvertOffloadTest extends QemuFolderTest {
    private static final int SIZE = 12 << 20;

    /** Into a raw target the kernel copies, from the jar's Java 22+ layer: on Java 21 the copy is made without it. */
    private static void assumeKernelCopy(String format) {
        assumeTrue(!format.equals("raw") || Runtime.version().feature() >= 22, "copy_file_range needs Java 22+");
    }

    /** A source of the kind named, holding MixedData (text, random, zero, pattern, half-random clusters). */
    private String source(String kind) throws IOException {
        Path raw = dir.resolve("data.raw");
        byte[] bytes = MixedData.generate(11, 65536, SIZE);
        Files.write(raw, bytes);
        Qemu.exec(List.of("fallocate", "-p", "-o", Integer.toString(4 << 20), "-l", Integer.toString(1 << 20),
                raw.toString()));
        switch (kind) {
            case "raw" -> {
                return raw.toString();
            }
            case "qcow2" -> Qemu.img("convert", "-f", "raw", "-O", "qcow2", raw.toString(), path("src.qcow2"));
            case "compressed" -> Qemu.img("convert", "-c", "-f", "raw", "-O", "qcow2", raw.toString(),
                    path("src.qcow2"));
            case "chain" -> {
                Qemu.img("convert", "-f", "raw", "-O", "qcow2", raw.toString(), path("base.qcow2"));
                Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", path("src.qcow2"));
                Qemu.io(Path.of(path("src.qcow2")), "write -P 0x77 1M 3M", "write -z 6M 1M", "write -P 0 9M 64k");
            }
            case "data-file" -> {
                Qemu.img("create", "-q", "-f", "qcow2", "-o", "data_file=" + path("src.data"), path("src.qcow2"),
                        Integer.toString(SIZE));
                Qemu.io(Path.of(path("src.qcow2")), "write -P 0x31 0 5M", "write -z 5M 64k", "write -P 0 6M 1M");
            }
            default -> throw new IllegalArgumentException(kind);
        }
        return path("src.qcow2");
    }

    /**
     * -C beside the options it does not refuse: with -n -B (the kernel copy is off: a piece may hold the backing
     * file's data), --target-is-zero, several sources and -l (the snapshot's clusters); the same as qemu-img's.
     */
    @ParameterizedTest(name = "[{index}] {0} {1} -> {2}")
    @CsvSource(delimiter = '|', value = {"-n -B unused | chain | raw", "-n -B unused | chain | qcow2",
        "-n --target-is-zero | qcow2 | raw", "-n --target-is-zero | qcow2 | qcow2", "'' | two | raw",
        "-l s1 | snapshot | raw", "-l s1 | snapshot | qcow2"})
    void besideOtherOptionsAsQemuImg(String options, String kind, String format) throws IOException {
        assumeKernelCopy(format);
        List<String> sources = new ArrayList<>();
        switch (kind) {
            case "two" -> {
                sources.add(source("raw"));
                sources.add(source("qcow2"));
            }
            case "snapshot" -> {
                String src = source("qcow2");
                Qemu.img("snapshot", "-c", "s1", src);
                Qemu.io(Path.of(src), "write -P 0x55 0 2M");
                sources.add(src);
            }
            default -> sources.add(source(kind));
        }
        long size = kind.equals("two") ? 2L * SIZE : SIZE;
        List<String> targets = List.of(path("theirs." + format), path("mine." + format));
        if (options.contains("-n")) {
            for (String t : targets) {
                Qemu.img("create", "-q", "-f", format, t, Long.toString(size));
                if (!options.contains("--target-is-zero")) {
                    Qemu.ioFormat(format, Path.of(t), "write -P 0x44 0 " + size);
                }
            }
        }
        List<String> args = new ArrayList<>(List.of("convert", "-C"));
        if (!options.isEmpty()) {
            args.addAll(List.of(options.split(" ")));
        }
        args.addAll(List.of("-O", format));
        args.addAll(sources);
        Cli.Both both = Cli.intoTargets(args, targets.get(0), targets.get(1));
        Qemu.Result theirs = both.theirs();
        Cli.Run mine = both.mine();

        assertEquals(0, theirs.exitCode(), theirs.stderr());
        assertEquals(0, mine.code(), mine.err());
        assertTrue(Qemu.img("compare", "-f", format, "-F", format, targets.get(0), targets.get(1))
                .contains("Images are identical"));
        assertEquals(Qemu.img("map", "--output=json", "-f", format, targets.get(0)),
                Qemu.img("map", "--output=json", "-f", format, targets.get(1)), "allocated as qemu-img's");
    }

    @ParameterizedTest(name = "{0} -> {1}, -n {2}")
    @CsvSource({"raw, raw, false", "raw, qcow2, false", "qcow2, raw, false", "qcow2, qcow2, false",
        "chain, raw, false", "chain, qcow2, false", "data-file, raw, false", "data-file, qcow2, false",
        "compressed, raw, false", "compressed, qcow2, false", "qcow2, raw, true", "qcow2, qcow2, true",
        "chain, raw, true"})
    void copiesAsQemuImgDoes(String kind, String format, boolean existing) throws IOException {
        assumeKernelCopy(format);
        String src = source(kind);
        List<String> targets = List.of(path("theirs." + format), path("mine." + format));
        if (existing) {
            for (String t : targets) {
                Qemu.img("create", "-q", "-f", format, t, Integer.toString(SIZE));
                Qemu.ioFormat(format, Path.of(t), "write -P 0x44 0 12M");
            }
        }
        List<String> args = new ArrayList<>(List.of("convert", "-C"));
        if (existing) {
            args.add("-n");
        }
        args.addAll(List.of("-O", format, src));
        Cli.Both both = Cli.intoTargets(args, targets.get(0), targets.get(1));
        Qemu.Result theirs = both.theirs();
        Cli.Run mine = both.mine();

        assertEquals(0, theirs.exitCode(), theirs.stderr());
        assertEquals(0, mine.code(), mine.err());
        assertTrue(Qemu.img("compare", "-F", format, src, targets.get(1)).contains("Images are identical"));
        assertEquals(Qemu.img("map", "--output=json", "-f", format, targets.get(0)),
                Qemu.img("map", "--output=json", "-f", format, targets.get(1)), "allocated as qemu-img's");
        if (format.equals("qcow2")) {
            Qemu.img("check", targets.get(1));
        }
    }
}
