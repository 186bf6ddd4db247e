package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The command line's models, built in code ({@link CodeModel}: the root, info, check, convert) or from annotations
 * (the others), behave alike: help, version, a missing parameter, an unknown option, values and flags.
 */
class CliModelTest {
    @Test
    void helpListsEveryCommandWithItsDescription() {
        Cli.Run r = ours("--help");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("Usage: qcow2-loom [-hV] [COMMAND]"), r.out());
        for (String line : new String[] {"  create    Create a new image.", "  info      Show an image's metadata.",
                "  check     Check an image's metadata for consistency, optionally repairing it.",
                "  convert   Convert an image", "  map       ", "  resize    ", "  snapshot  ", "  bench     ",
                "  serve     ", "  demo      "}) {
            assertTrue(r.out().contains(line), line + " in\n" + r.out());
        }
        assertEquals("qcow2-loom 0.1.0\n", ours("-V").out());
    }

    @ParameterizedTest
    @ValueSource(strings = {"info", "check", "map"})
    void aMissingFileOrAnUnknownOptionIsRefusedWithTheUsage(String command) {
        Cli.Run missing = ours(command);
        assertEquals(1, missing.code());
        assertTrue(missing.err().startsWith("qcow2-loom: Missing required parameter: 'FILE'\nUsage: qcow2-loom "
                + command + " "), missing.err());
        assertTrue(missing.err().contains("  -f=<format>"), missing.err());
        Cli.Run unknown = ours(command, "-x", "a.qcow2");
        assertEquals(1, unknown.code());
        assertTrue(unknown.err().startsWith("qcow2-loom: Unknown option: '-x'"), unknown.err());
    }

    @Test
    void valuesAndFlagsReachTheCommand(@TempDir Path dir) throws Exception {
        Path raw = dir.resolve("x.img");
        Files.write(raw, new byte[4096]);
        Cli.Run info = ours("info", "-U", "-f", "raw", "--output=json", raw.toString());
        assertEquals(0, info.code(), info.err());
        assertTrue(info.out().contains("\"format\": \"raw\""), info.out());
        String image = dir.resolve("x.qcow2").toString();
        assertEquals(0, ours("create", "-q", "-f", "qcow2", image, "1M").code());
        assertTrue(ours("check", image).out().contains("No errors were found on the image."));
        Cli.Run quiet = ours("check", "-q", "--output", "human", image);
        assertEquals(0, quiet.code(), quiet.err());
        assertEquals("", quiet.out());
        Cli.Run repair = ours("check", "-r", "sometimes", image);
        assertEquals(1, repair.code());
        assertTrue(repair.err().contains("sometimes"), repair.err());
    }

    @Test
    void convertTakesRepeatedOptionsIntsAndFlags(@TempDir Path dir) throws Exception {
        String src = dir.resolve("src.qcow2").toString();
        String dst = dir.resolve("dst.qcow2").toString();
        assertEquals(0, ours("create", "-q", "-f", "qcow2", src, "1M").code());
        Cli.Run run = ours("convert", "-O", "qcow2", "-o", "cluster_size=4096", "-o", "lazy_refcounts=on", "-m", "3",
                "-W", "-o", "refcount_bits=8", "-U", "--profile", "default", "-q", src, dst);
        assertEquals(0, run.code(), run.err());
        String info = ours("info", "--output=json", dst).out();
        assertTrue(info.contains("\"cluster-size\": 4096"), info);
        assertTrue(info.contains("\"lazy-refcounts\": true"), info);
        assertTrue(info.contains("\"refcount-bits\": 8"), info);
        Cli.Run notInt = ours("convert", "-m", "x", src, dst);
        assertEquals(1, notInt.code());
        assertTrue(notInt.err().startsWith("qcow2-loom: Invalid value for option '-m': 'x' is not an int\n"
                + "Usage: qcow2-loom convert [-cCnpqUW] [--bitmaps] [--image-opts] [--salvage]"), notInt.err());
        assertTrue(notInt.err().contains("[-o=<options>]... [--object=<objectdef>]... [FILE...]"), notInt.err());
        assertTrue(notInt.err().contains("  -m=N                       Parallel requests"), notInt.err());
        Cli.Run missing = ours("convert", src);
        assertEquals(1, missing.code());
        assertEquals("qcow2-loom: Must specify image file name\n", missing.err()); // qemu-img's words
    }
}
