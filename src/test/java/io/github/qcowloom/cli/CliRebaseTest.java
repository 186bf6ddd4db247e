package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.TwoCopies.qcow2;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code rebase} side by side with qemu-img rebase 7.2, each on its own copy of the same images ({@link TwoCopies}).
 */
class CliRebaseTest {
    @TempDir
    Path dir;
    private int cases;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** b1 (2 MiB, data at 0), b2 (4 MiB, other data overlapping it, and some at 3 MiB), o over b1 (6 MiB). */
    private static void twoBackingFiles(Path f, String... overlayOptions) {
        Qemu.io(qcow2(f, "b1.qcow2", "2M"), "write -P 1 0 1M", "write -P 7 1536k 4k");
        Qemu.io(qcow2(f, "b2.qcow2", "4M"), "write -P 2 512k 1M", "write -P 7 1536k 4k", "write -P 9 3M 4k",
                "write -P 8 3500k 1k");
        List<String> args = new ArrayList<>(List.of(overlayOptions));
        args.addAll(List.of("-b", "b1.qcow2", "-F", "qcow2"));
        Qemu.io(qcow2(f, "o.qcow2", "6M", args.toArray(String[]::new)), "write -P 3 3M 64k", "write -P 4 100k 1k",
                "write -P 5 700k 512", "write -z 900k 64k");
    }

    private void assertSameRebase(TwoCopies.Setup setup, String image, String... args) throws IOException {
        new TwoCopies(dir.resolve("case" + ++cases)).assertSame(setup, "rebase", List.of(args), image, image);
    }

    @Test
    void ontoAnotherBackingFile() throws IOException {
        // 2-4 MiB: past the old backing file's end, so the new one's data there is hidden by zeroes written.
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-b", "b2.qcow2", "-F", "qcow2");
    }

    @Test
    void ontoNothing() throws IOException {
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-b", "");
    }

    /** Without -F the copy is made and the change refused, as in qemu-img: the image reads the same either way. */
    @Test
    void withoutTheBackingFormat() throws IOException {
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-b", "b2.qcow2");
    }

    @ParameterizedTest
    @ValueSource(strings = {"cluster_size=512", "cluster_size=4k", "cluster_size=2M", "extended_l2=on",
            "compat=0.10", "lazy_refcounts=on"})
    void overlayGeometries(String options) throws IOException {
        assertSameRebase(f -> twoBackingFiles(f, "-o", options), "o.qcow2", "-b", "b2.qcow2", "-F", "qcow2");
    }

    /** Onto the base of a three-image chain: the middle image's data goes into the top one. */
    @Test
    void ontoAnImageOfItsOwnChain() throws IOException {
        TwoCopies.Setup chain = f -> {
            Qemu.io(qcow2(f, "base.qcow2", "4M"), "write -P 1 0 4M");
            Qemu.io(qcow2(f, "mid.qcow2", "4M", "-b", "base.qcow2", "-F", "qcow2"), "write -P 2 1M 64k",
                    "write -z 2M 8k", "write -P 1 3M 64k");
            Qemu.io(qcow2(f, "top.qcow2", "4M", "-b", "mid.qcow2", "-F", "qcow2"), "write -P 3 1M 4k");
        };
        assertSameRebase(chain, "top.qcow2", "-b", "base.qcow2", "-F", "qcow2");
        assertSameRebase(chain, "top.qcow2", "-b", "mid.qcow2", "-F", "qcow2");
    }

    /** The image between is shorter than the top: past its end the top reads zeroes, which are written there. */
    @Test
    void ontoItsOwnChainPastAShorterImageBetween() throws IOException {
        assertSameRebase(f -> {
            Qemu.io(qcow2(f, "base.qcow2", "4M"), "write -P 1 0 4M");
            Qemu.io(qcow2(f, "mid.qcow2", "2M", "-b", "base.qcow2", "-F", "qcow2"), "write -P 2 0 64k");
            Qemu.io(qcow2(f, "top.qcow2", "4M", "-b", "mid.qcow2", "-F", "qcow2"), "write -P 3 1M 4k");
        }, "top.qcow2", "-b", "base.qcow2", "-F", "qcow2");
    }

    @Test
    void rawBackingFilesAndAnOverlayWithoutOne() throws IOException {
        TwoCopies.Setup raw = f -> {
            try (RandomAccessFile r = new RandomAccessFile(f.resolve("old.raw").toFile(), "rw")) {
                r.setLength(3 << 20);
                r.seek(4096);
                r.write(new byte[] {1, 2, 3});
            }
            try (RandomAccessFile r = new RandomAccessFile(f.resolve("new.raw").toFile(), "rw")) {
                r.setLength(4 << 20);
                r.seek(8192);
                r.write(new byte[] {4, 5, 6});
                r.seek(3 << 20);
                r.write(new byte[] {7});
            }
            Qemu.io(qcow2(f, "o.qcow2", "4M", "-b", "old.raw", "-F", "raw"), "write -P 3 1M 4k");
            Qemu.io(qcow2(f, "alone.qcow2", "4M"), "write -P 3 1M 4k");
        };
        assertSameRebase(raw, "o.qcow2", "-b", "new.raw", "-F", "raw");
        assertSameRebase(raw, "alone.qcow2", "-b", "new.raw", "-F", "raw");
    }

    @Test
    void unsafeChangesTheNameAlone() throws IOException {
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-u", "-b", "b2.qcow2", "-F", "qcow2");
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-u");
        // A backing file moved away: unsafe mode opens neither backing file.
        assertSameRebase(f -> {
            twoBackingFiles(f);
            Files.move(f.resolve("b1.qcow2"), f.resolve("moved.qcow2"));
        }, "o.qcow2", "-u", "-b", "moved.qcow2", "-F", "qcow2");
    }

    @Test
    void cacheModes() throws IOException {
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-t", "none", "-T", "none", "-b", "b2.qcow2",
                "-F", "qcow2");
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-t", "unsafe", "-q", "-b", "b2.qcow2", "-F",
                "qcow2");
    }

    @Test
    void refusalsInQemuImgsWords() throws IOException {
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-b", "missing.qcow2", "-F", "qcow2");
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-b", "b2.qcow2", "-F", "nonsense");
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-t", "bad", "-b", "b2.qcow2", "-F", "qcow2");
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-T", "bad", "-b", "b2.qcow2", "-F", "qcow2");
        assertSameRebase(CliRebaseTest::twoBackingFiles, "absent.qcow2", "-b", "b2.qcow2", "-F", "qcow2");
        // A name longer than QEMU's 1023 bytes, and one that does not fit in a 512-byte first cluster.
        assertSameRebase(CliRebaseTest::twoBackingFiles, "o.qcow2", "-u", "-b", "n".repeat(1024), "-F", "qcow2");
        assertSameRebase(f -> twoBackingFiles(f, "-o", "cluster_size=512"), "o.qcow2", "-u", "-b",
                "n".repeat(400), "-F", "qcow2");
        // A raw image has no backing file to change.
        assertSameRebase(f -> Files.write(f.resolve("x.raw"), new byte[65536]), "x.raw", "-f", "raw", "-u", "-b",
                "b.qcow2", "-F", "qcow2");
        // An image whose raw external data file holds its data cannot have a backing file.
        // (Named absolutely: QEMU opens a relative data file name from its working directory.)
        assertSameRebase(f -> qcow2(f, "d.qcow2", "1M", "-o", "data_file=" + f.resolve("d.data") + ",data_file_raw=on"),
                "d.qcow2",
                "-u", "-b", "b.qcow2", "-F", "qcow2");
    }

    @Test
    void usageErrors() {
        Path img = qcow2(dir, "u.qcow2", "1M");
        assertTrue(Cli.ours("rebase", img.toString()).err().contains(
                "Must specify backing file (-b) or use unsafe mode (-u)"));
        assertTrue(Cli.ours("rebase", "-u", img.toString(), img.toString()).err().contains(
                "Expecting one image file name"));
        assertEquals(0, Cli.ours("rebase", "-p", "-b", "", img.toString()).code());
    }
}
