package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static io.github.qcowloom.cli.Cli.sameAsQemuImg;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code info --backing-chain}: each image of the chain, side by side with qemu-img on the same files. */
class CliInfoChainTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    // A raw base, a middle with data, a snapshot and a bitmap, and a top in a subfolder naming it relatively
    // (qemu-img names it "sub/../mid.qcow2"); human and JSON, with and without the lock.
    @ParameterizedTest
    @ValueSource(strings = {"human", "json"})
    void aChainOfThreeAsQemuImgShowsIt(String output) throws IOException {
        Path sub = Files.createDirectories(dir.resolve("sub"));
        Qemu.img("create", "-q", "-f", "raw", dir.resolve("base.raw").toString(), "4M");
        Qemu.ioFormat("raw", dir.resolve("base.raw"), "write -P 0x11 0 64k");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw",
                dir.resolve("mid.qcow2").toString());
        Qemu.io(dir.resolve("mid.qcow2"), "write -P 0x22 64k 64k");
        Qemu.img("snapshot", "-c", "before top", dir.resolve("mid.qcow2").toString());
        Qemu.img("bitmap", "--add", "-g", "65536", dir.resolve("mid.qcow2").toString(), "b0");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "../mid.qcow2", "-F", "qcow2",
                sub.resolve("top.qcow2").toString(), "8M");
        String top = sub.resolve("top.qcow2").toString();
        String out = sameAsQemuImg("info", "--backing-chain", "--output=" + output, top);
        assertTrue(out.contains("sub/../mid.qcow2") && out.contains("base.raw") && out.contains("b0"), out);
        sameAsQemuImg("info", "--backing-chain", "-U", "--output=" + output, top);
        // Without the flag, the top alone: a single object, not a list of one.
        sameAsQemuImg("info", "--output=" + output, top);
        sameAsQemuImg("info", "--backing-chain", "--output=" + output, dir.resolve("base.raw"));
    }

    // No backing format recorded: qemu-img probes the backing file, whatever -f said of the top.
    @Test
    void aBackingFileWithoutFormatIsProbedEvenUnderDashF() throws IOException {
        Qemu.img("create", "-q", "-f", "raw", dir.resolve("base.raw").toString(), "1M");
        Path top = dir.resolve("top.qcow2");
        ImageCreator.create(top, CreateOptions.defaults(1 << 20).withBacking("base.raw", null));
        String out = sameAsQemuImg("info", "--backing-chain", "-f", "qcow2", top);
        assertTrue(out.contains("file format: raw"), out);
        sameAsQemuImg("info", "--backing-chain", "--output=json", top);
    }

    // Loops of one and of two images, a missing backing file: qemu-img's words and exit code, nothing on stdout.
    @Test
    void loopsAndAMissingBackingFileFailAsInQemuImg() throws IOException {
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "self.qcow2", "-F", "qcow2",
                dir.resolve("s0.qcow2").toString(), "1M");
        Files.move(dir.resolve("s0.qcow2"), dir.resolve("self.qcow2"));
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "b.qcow2", "-F", "qcow2",
                dir.resolve("a.qcow2").toString(), "1M");
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "a.qcow2", "-F", "qcow2",
                dir.resolve("b.qcow2").toString(), "1M");
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "gone.qcow2", "-F", "qcow2",
                dir.resolve("orphan.qcow2").toString(), "1M");
        for (String name : new String[] {"self.qcow2", "b.qcow2", "orphan.qcow2"}) {
            sameAsQemuImg("info", "--backing-chain", dir.resolve(name));
            // Without the flag the backing file is never opened.
            sameAsQemuImg("info", dir.resolve(name));
        }
    }

    // A backing file that is not there fails every open of the chain in qemu-img's words, the name as QEMU joins it
    // to the image's folder (sub/../gone.qcow2), one "Could not open backing file" per level.
    @Test
    void aMissingBackingFileFailsEveryOpenOfTheChainAsInQemuImg() throws IOException {
        Path sub = Files.createDirectories(dir.resolve("sub"));
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "../gone.qcow2", "-F", "qcow2",
                sub.resolve("orphan.qcow2").toString(), "1M");
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "sub/orphan.qcow2", "-F", "qcow2",
                dir.resolve("top.qcow2").toString(), "1M");
        for (Path image : new Path[] {sub.resolve("orphan.qcow2"), dir.resolve("top.qcow2")}) {
            sameAsQemuImg("map", image);
            sameAsQemuImg("check", image);
            sameAsQemuImg("snapshot", "-l", image);
            sameAsQemuImg("compare", image, image);
            sameAsQemuImg("map", "--image-opts", "driver=qcow2,file.filename=" + image);
        }
    }

    /** An external data file that is not there fails every open but info's, named as QEMU joins it to the image's. */
    @Test
    void aMissingDataFileFailsEveryOpenAsInQemuImg() throws IOException {
        Path sub = Files.createDirectories(dir.resolve("sub"));
        Path image = sub.resolve("d.qcow2");
        // Made where the image is: qemu-img creates a relative data file from its working directory.
        assertEquals(0, Qemu.exec(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=d.raw", "d.qcow2",
                "1M"), sub).exitCode());
        Files.delete(sub.resolve("d.raw"));
        sameAsQemuImg("map", image);
        sameAsQemuImg("check", image);
        sameAsQemuImg("snapshot", "-l", image);
        sameAsQemuImg("compare", image, image);
        sameAsQemuImg("resize", image, "2M");
        sameAsQemuImg("rebase", "-u", "-b", "", image);
        sameAsQemuImg("map", "--image-opts", "driver=qcow2,file.filename=" + image);
        assertEquals(0, ours("info", image.toString()).code());
    }

    /** A cluster whose header says version 9, which both refuse. */
    private Path version9() throws IOException {
        Path bad = dir.resolve("v9.qcow2");
        byte[] header = new byte[1 << 16];
        java.nio.ByteBuffer.wrap(header).putInt(0x514649fb).putInt(9);
        return Files.write(bad, header);
    }

    /**
     * An image whose header QEMU refuses is named, and one below another is "Could not open backing file", in every
     * command, as qemu-img's open contexts name them (before, the header's words alone: which file?).
     */
    @Test
    void aRefusedHeaderIsNamedAsQemuImgNamesIt() throws IOException {
        Path bad = version9();
        Path top = dir.resolve("over-v9.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", bad.toString(), "-F", "qcow2", top.toString(), "1M");
        for (Path image : new Path[] {bad, top}) {
            sameAsQemuImg("map", image);
            sameAsQemuImg("check", image);
            sameAsQemuImg("snapshot", "-l", image);
            sameAsQemuImg("compare", image, image);
            sameAsQemuImg("measure", "-O", "qcow2", image);
            sameAsQemuImg("map", "--image-opts", "driver=qcow2,file.filename=" + image);
        }
        sameAsQemuImg("rebase", "-u", "-b", "", bad);
        // Onto it: the new backing file's own words; and a failure after the open keeps its bare words.
        Path fresh = dir.resolve("fresh.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", fresh.toString(), "1M");
        sameAsQemuImg("rebase", "-b", bad.toString(), "-F", "qcow2", fresh);
        Path v2 = dir.resolve("v2.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "compat=0.10", v2.toString(), "1M");
        Qemu.img("snapshot", "-c", "s", v2.toString());
        sameAsQemuImg("amend", "-o", "size=2M", v2);
    }

    /**
     * create over a backing file that does not open: qemu-img create's words (the new image's name, the open's own
     * words, the hint "Could not open backing image."), a missing file named as QEMU joins its name to the image's;
     * a file that ends inside its header read with zeroes after it, as QEMU reads it.
     */
    @Test
    void createOverABackingFileThatDoesNotOpenSaysWhatQemuImgSays() throws IOException {
        Path bad = version9();
        Path good = dir.resolve("good.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", good.toString(), "1M");
        Path shortened = dir.resolve("short.qcow2");
        Files.write(shortened, java.util.Arrays.copyOf(Files.readAllBytes(good), 50));
        Files.createDirectories(dir.resolve("sub"));
        List<List<String>> formats = List.of(List.of("-F", "qcow2"), List.of(), List.of("-F", "foo"));
        for (String backing : List.of(bad.toString(), shortened.toString(), "missing.qcow2", good.toString())) {
            for (List<String> format : formats) {
                if (backing.equals(good.toString()) && format.equals(formats.get(0))) {
                    continue; // it opens: the create succeeds
                }
                for (List<String> size : List.of(List.of("1M"), List.<String>of())) {
                    List<String> args = concat(List.of("create", "-f", "qcow2", "-b", backing), format);
                    Qemu.Result theirs = Qemu.exec(concat(concat(List.of("qemu-img"), args),
                            concat(List.of(dir.resolve("sub/theirs.qcow2").toString()), size)));
                    Cli.Run mine = ours(concat(args, concat(List.of(dir.resolve("sub/mine.qcow2").toString()), size))
                            .toArray(String[]::new));
                    assertEquals(1, theirs.exitCode(), theirs.stderr());
                    assertEquals(theirs.exitCode(), mine.code(), mine.err());
                    // qemu-img ends the hint "Detected format of qcow2." without a newline; ours ends the line.
                    String expected = theirs.stderr().replace("qemu-img: ", "qcow2-loom: ").replace("theirs", "mine");
                    assertEquals(expected.endsWith("\n") ? expected : expected + "\n", mine.err(), args.toString());
                }
            }
        }
        sameAsQemuImg("info", "-f", "qcow2", shortened);
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> all = new java.util.ArrayList<>(a);
        all.addAll(b);
        return all;
    }

    /** A format neither tool has, refused before the file is looked at, named as each command names its image. */
    @Test
    void anUnknownDriverIsRefusedFirst() throws IOException {
        Path image = dir.resolve("i.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "1M");
        String missing = dir.resolve("missing").toString();
        sameAsQemuImg("info", "-f", "foo", missing);
        sameAsQemuImg("info", "--image-opts", "driver=foo,file.filename=" + missing);
        sameAsQemuImg("check", "-f", "foo", image);
        sameAsQemuImg("map", "--image-opts", "driver=foo,file.filename=" + image);
    }

    // Names that differ and lead to the same file (qemu-img goes on until the name is too long to open) and names
    // no backing file may have here (json:, protocols) are refused, typed, before anything is printed.
    @Test
    void endlessNamesAndProtocolsAreRefused() throws IOException {
        ImageCreator.create(dir.resolve("dot.qcow2"),
                CreateOptions.defaults(1 << 20).withBacking("./dot.qcow2", "qcow2"));
        Cli.Run dot = ours("info", "--backing-chain", dir.resolve("dot.qcow2").toString());
        assertEquals(1, dot.code());
        assertEquals("", dot.out());
        assertEquals("qcow2-loom: Backing chain is deeper than 64 images (a loop?)\n", dot.err());
        ImageCreator.create(dir.resolve("nbd.qcow2"),
                CreateOptions.defaults(1 << 20).withBacking("nbd://localhost/x", "raw"));
        Cli.Run nbd = ours("info", "--backing-chain", dir.resolve("nbd.qcow2").toString());
        assertEquals(1, nbd.code());
        assertEquals("", nbd.out());
        assertTrue(nbd.err().contains("protocol 'nbd' is not supported"), nbd.err());
    }
}
