package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.TwoCopies.qcow2;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code commit} side by side with qemu-img commit 7.2, each on its own copy of the same chain ({@link TwoCopies}):
 * base (4 MiB) under mid (5 MiB) under top (6 MiB), each holding data, zeroes and partial clusters, so that the base
 * grows, chunks are copied whole and zeroes reach it as zeroes. All three images are compared afterwards.
 */
class CliCommitTest {
    @TempDir
    Path dir;
    private int cases;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private static void chain(Path f, String... baseOptions) {
        Qemu.io(qcow2(f, "base.qcow2", "4M", baseOptions), "write -P 1 0 1M", "write -P 9 3M 4k");
        Qemu.io(qcow2(f, "mid.qcow2", "5M", "-b", "base.qcow2", "-F", "qcow2"), "write -P 2 512k 100k",
                "write -z 3M 64k");
        Qemu.io(qcow2(f, "top.qcow2", "6M", "-b", "mid.qcow2", "-F", "qcow2"), "write -P 3 5M 64k",
                "write -P 4 100k 1k", "write -P 5 700k 512", "write -z 900k 64k", "write -P 6 4608k 8k");
    }

    private void assertSameCommit(TwoCopies.Setup setup, String... args) throws IOException {
        new TwoCopies(dir.resolve("case" + ++cases)).assertSame(setup, "commit", List.of(args), "top.qcow2",
                "base.qcow2", "mid.qcow2", "top.qcow2");
    }

    /** Into the backing file, which is emptied of nothing; then the top is emptied, unless -d. */
    @ParameterizedTest
    @ValueSource(strings = {"", "cluster_size=512", "cluster_size=4k", "cluster_size=2M", "extended_l2=on",
            "compat=0.10"})
    void intoTheBackingFile(String baseOptions) throws IOException {
        TwoCopies.Setup setup = baseOptions.isEmpty() ? f -> chain(f) : f -> chain(f, "-o", baseOptions);
        assertSameCommit(setup);
        assertSameCommit(setup, "-d");
        // Deeper, through the middle image: -b implies -d.
        assertSameCommit(setup, "-b", "base.qcow2");
    }

    @Test
    void cacheModesQuietAndRate() throws IOException {
        assertSameCommit(CliCommitTest::chain, "-t", "none");
        assertSameCommit(CliCommitTest::chain, "-q", "-t", "unsafe");
        assertSameCommit(CliCommitTest::chain, "-r", "100M");
    }

    @Test
    void aRawBase() throws IOException {
        assertSameCommit(f -> {
            try (RandomAccessFile r = new RandomAccessFile(f.resolve("base.raw").toFile(), "rw")) {
                r.setLength(2 << 20);
                r.seek(4096);
                r.write(new byte[] {1, 2, 3});
            }
            Qemu.io(qcow2(f, "top.qcow2", "3M", "-b", "base.raw", "-F", "raw"), "write -P 3 1M 4k",
                    "write -P 4 2560k 8k");
        });
    }

    /**
     * A raw base whose format the top does not record is probed, and a commit that would write a qcow2 header into
     * its first sector fails, the base untouched, as QEMU's raw driver refuses the write (EPERM); before, ours wrote
     * it, and the base then probed as a broken qcow2 image that ended the chain.
     */
    @Test
    void aProbedRawBaseTakesNoQcow2Header() throws IOException {
        List<Path> bases = new ArrayList<>();
        for (String tool : List.of("qemu", "ours")) {
            Path f = Files.createDirectories(dir.resolve("probed-" + tool));
            Files.write(f.resolve("base.raw"), new byte[2 << 20]);
            Path top = f.resolve("top.qcow2"); // no backing format recorded: the base is probed
            ImageCreator.create(top, CreateOptions.defaults(2 << 20).withBacking("base.raw", null));
            Qemu.io(top, "write -P 0x51 0 1", "write -P 0x46 1 1", "write -P 0x49 2 1", "write -P 0xfb 3 1",
                    "write -P 3 7 1");
            if (tool.equals("qemu")) {
                Qemu.Result r = Qemu.exec(List.of("qemu-img", "commit", top.toString()));
                assertEquals(1, r.exitCode(), r.stderr());
                assertTrue(r.stderr().contains("Operation not permitted"), r.stderr());
            } else {
                Cli.Run r = Cli.ours("commit", top.toString());
                assertEquals(1, r.code(), r.err());
                assertTrue(r.err().contains("Operation not permitted") && r.err().contains("qcow2 header"), r.err());
            }
            bases.add(f.resolve("base.raw"));
        }
        assertArrayEquals(new byte[512], Arrays.copyOf(Files.readAllBytes(bases.get(1)), 512));
        assertTrue(Qemu.img("info", bases.get(1).toString()).contains("file format: raw"));
        assertEquals("Images are identical.\n", Qemu.img("compare", "-f", "raw", "-F", "raw",
                bases.get(0).toString(), bases.get(1).toString()));
    }

    /** A base over a longer backing file of its own grows, and QEMU zeroes all it gains (bdrv_co_truncate). */
    @Test
    void aBaseOverALongerBackingFile() throws IOException {
        assertSameCommit(f -> {
            Qemu.io(qcow2(f, "under.qcow2", "8M"), "write -P 1 0 8M");
            Qemu.io(qcow2(f, "base.qcow2", "4000k", "-b", "under.qcow2", "-F", "qcow2"), "write -P 2 0 64k");
            Qemu.io(qcow2(f, "top.qcow2", "6M", "-b", "base.qcow2", "-F", "qcow2"), "write -P 3 5M 64k");
        });
    }

    /** FILE held by another writer: refused before the base changes, as qemu-img opens FILE for writing first. */
    @Test
    void aTopInUseIsRefusedBeforeTheBaseChanges() throws IOException {
        Path f = Files.createDirectories(dir.resolve("locked"));
        chain(f);
        byte[] base = Files.readAllBytes(f.resolve("base.qcow2"));
        try (var held = io.github.qcowloom.image.Qcow2Image.open(f.resolve("top.qcow2"),
                io.github.qcowloom.api.OpenOptions.readWriteDefaults())) {
            Cli.Run r = Cli.ours("commit", f.resolve("top.qcow2").toString());
            assertEquals(1, r.code(), r.err());
            assertTrue(r.err().contains("Failed to get \"write\" lock"), r.err());
        }
        assertTrue(java.util.Arrays.equals(base, Files.readAllBytes(f.resolve("base.qcow2"))), "the base is as it was");
    }

    @Test
    void refusalsInQemuImgsWords() throws IOException {
        assertSameCommit(CliCommitTest::chain, "-b", "nope.qcow2");
        assertSameCommit(f -> Qemu.io(qcow2(f, "top.qcow2", "1M"), "write -P 1 0 4k"));
        assertSameCommit(CliCommitTest::chain, "-t", "bad");
        assertSameCommit(f -> { }); // no such file
    }

    @Test
    void usageAndProgress() throws IOException {
        Path f = Files.createDirectories(dir.resolve("u"));
        chain(f);
        assertTrue(Cli.ours("commit", "a", "b").err().contains("Expecting one image file name"));
        Cli.Run r = Cli.ours("commit", "-p", f.resolve("top.qcow2").toString());
        assertEquals(0, r.code(), r.err());
        assertEquals("Image committed.\n", r.out());
    }
}
