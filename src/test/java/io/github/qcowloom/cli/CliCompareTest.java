package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * compare against qemu-img compare on the same pairs of images: the exit code, what it prints and its errors, word
 * for word (our name for qemu-img's in the errors).
 */
class CliCompareTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private Path qcow2(String name, String size, String... ioCommands) {
        Path p = dir.resolve(name);
        Qemu.img("create", "-q", "-f", "qcow2", p.toString(), size);
        for (String c : ioCommands) {
            Qemu.io(p, c);
        }
        return p;
    }

    private static String both(Object... args) {
        return Cli.sameAsQemuImg("compare", args);
    }

    @Test
    void sameContentsWhateverTheirLayout() throws Exception {
        Path a = qcow2("a.qcow2", "64M", "write -P 0x11 1M 3M", "write -z 8M 1M", "write -P 0 16M 64k");
        Path b = qcow2("b.qcow2", "64M", "write -P 0x11 1M 3M");
        assertEquals("Images are identical.\n", both(a, b));
        both(b, a);
        both("-q", a, b);
        Path raw = dir.resolve("a.raw");
        Qemu.img("convert", "-O", "raw", a.toString(), raw.toString());
        both(a, raw);
        both("-f", "qcow2", "-F", "raw", a, raw);
        both("-T", "none", a, raw);
        Path compressed = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", a.toString(), compressed.toString());
        both(compressed, b);
        // A backing file's data read through an overlay that holds none.
        Path overlay = dir.resolve("o.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", b.toString(), "-F", "qcow2", overlay.toString());
        both(overlay, a);
    }

    @Test
    void theFirstDifferingSectorIsNamed() throws Exception {
        Path a = qcow2("a.qcow2", "64M", "write -P 0x11 1M 3M");
        Path b = qcow2("b.qcow2", "64M", "write -P 0x11 1M 3M", "write -P 0x12 2101000 1");
        assertEquals("Content mismatch at offset 2100736!\n", both(a, b));
        // Data in one, nothing in the other: the sector of the first byte that is not zero.
        Path c = qcow2("c.qcow2", "64M", "write -P 0x11 1M 3M", "write -P 0x13 40000005 3");
        both(a, c);
        both(c, a);
        Path empty = qcow2("e.qcow2", "64M");
        both(empty, a);
        // The first sector of a chunk that differs names the chunk's start.
        Path d = qcow2("d.qcow2", "64M", "write -P 0x11 1M 3M", "write -P 0x14 1M 1");
        both(a, d);
    }

    @Test
    void differentSizes() throws Exception {
        Path small = qcow2("s.qcow2", "32M", "write -P 0x11 0 1M");
        Path zeroTail = qcow2("z.qcow2", "64M", "write -P 0x11 0 1M", "write -z 40M 1M");
        Path dataTail = qcow2("d.qcow2", "64M", "write -P 0x11 0 1M", "write -P 0x22 50M 4k");
        assertEquals("Warning: Image size mismatch!\nImages are identical.\n", both(small, zeroTail));
        both(dataTail, small);
        both("-s", small, zeroTail);
        both("-s", "-q", small, dataTail);
    }

    @Test
    void strictModeComparesBlockStatus() throws Exception {
        Path a = qcow2("a.qcow2", "64M", "write -P 0x11 1M 3M");
        Path same = qcow2("b.qcow2", "64M", "write -P 0x11 1M 3M");
        both("-s", a, same);
        Path zeroes = qcow2("z.qcow2", "64M", "write -P 0x11 1M 3M", "write -z 8M 1M");
        both("-s", a, zeroes);
        Path compressed = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", a.toString(), compressed.toString());
        both("-s", a, compressed);
        // The same flags but for BDRV_BLOCK_EOF: one image's first run reaches its end, the other's does not.
        Path whole = qcow2("w.qcow2", "1M", "write -P 1 0 1M");
        Path halves = qcow2("h.qcow2", "1M", "write -P 1 512k 512k", "write -P 1 0 512k");
        assertEquals("Strict mode: Offset 0 block status mismatch!\n", both("-s", whole, halves));
        both("-T", "off", whole, halves);
    }

    /**
     * Strict mode over backing files shorter than their images, as QEMU's block status answers there: the zeroes
     * past a short backing file's end count as allocated (in that file), and a backing file that holds nothing
     * keeps its own end's BDRV_BLOCK_EOF, which a data run of it does not.
     */
    @Test
    void strictModePastAShortBackingFile() throws Exception {
        Path base = qcow2("b1.qcow2", "1M");
        Path withData = qcow2("b1d.qcow2", "1M", "write -P 1 0 1M");
        Path top = overlay("t2.qcow2", base, "2M");
        Path topOfData = overlay("t2d.qcow2", withData, "2M");
        Path flat = dir.resolve("f2d.qcow2");
        Qemu.img("convert", "-O", "qcow2", topOfData.toString(), flat.toString());
        Path zeroed = overlay("t2x.qcow2", base, "2M");
        Qemu.io(zeroed, "write -P 0 1M 64k");
        Path deeper = overlay("t3.qcow2", top, "3M");
        Path sameSize = overlay("t1.qcow2", base, "1M");
        Path[][] pairs = {{top, qcow2("e2.qcow2", "2M")}, {topOfData, flat}, {zeroed, dir.resolve("e2.qcow2")},
            {deeper, qcow2("e3.qcow2", "3M")}, {sameSize, base}, {top, zeroed}, {topOfData, top}};
        for (Path[] pair : pairs) {
            both("-s", pair[0], pair[1]);
            both("-s", pair[1], pair[0]);
        }
        assertEquals("Strict mode: Offset 1048576 block status mismatch!\n", both("-s", top, dir.resolve("e2.qcow2")));
    }

    private Path overlay(String name, Path backing, String size) {
        Path p = dir.resolve(name);
        Qemu.img("create", "-q", "-f", "qcow2", "-b", backing.toString(), "-F", "qcow2", p.toString(), size);
        return p;
    }

    /**
     * An 8 MiB image whose 128 clusters were written in a scattered order, so that each is a block status run of its
     * own; cluster {@code compressed} (unless -1) is written compressed first (qemu-io overwrites nothing so).
     */
    private Path scattered(String name, int compressed, String... more) {
        Path p = qcow2(name, "8M");
        List<String> writes = new ArrayList<>();
        if (compressed >= 0) {
            writes.add("write -c -P 0x11 " + compressed * 65536 + " 64k");
        }
        for (int i = 0; i < 128; i++) {
            int cluster = i * 37 % 128;
            if (cluster != compressed) {
                writes.add("write -P 0x11 " + cluster * 65536 + " 64k");
            }
        }
        writes.addAll(List.of(more));
        Qemu.io(p, writes.toArray(String[]::new));
        return p;
    }

    /**
     * Where every cluster is a run of its own, qemu-img compares 64 KiB at a time and ours reads up to 2 MiB of such
     * runs at once; the answers stay qemu-img's: the first difference, the block status difference that comes
     * before any content difference (and not the other way round), and a failing read told at its own cluster.
     */
    @Test
    void scatteredClustersGiveQemuImgsAnswers() throws Exception {
        Path a = scattered("a.qcow2", -1);
        Path contiguous = qcow2("c.qcow2", "8M", "write -P 0x11 0 8M");
        assertEquals("Images are identical.\n", both(a, contiguous));
        both("-T", "none", a, contiguous);
        Path late = scattered("late.qcow2", -1, "write -P 0x12 " + (50 * 65536 + 1000) + " 1");
        assertEquals("Content mismatch at offset " + (50 * 65536 + 512) + "!\n", both(a, late));
        both(late, contiguous);
        // Cluster 40 compressed (no host offset: a block status difference under -s) and a byte of cluster 20 or of
        // cluster 45 changed: -s names whichever qemu-img meets first.
        Path early = scattered("e.qcow2", 40, "write -P 0x13 " + 20 * 65536 + " 1");
        assertEquals("Content mismatch at offset " + 20 * 65536 + "!\n", both("-s", a, early));
        Path after = scattered("f.qcow2", 40, "write -P 0x13 " + 45 * 65536 + " 1");
        assertEquals("Strict mode: Offset " + 40 * 65536 + " block status mismatch!\n", both("-s", a, after));
        both(a, after);
        // Every cluster compressed, cluster 40's bytes damaged: the failure is told at cluster 40, as qemu-img tells
        // it (in its words for the error: QEMU's EIO, ours the stream's).
        Path compressed = dir.resolve("z.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", a.toString(), compressed.toString());
        damageCompressedCluster(compressed, 40);
        Qemu.Result theirs = Qemu.exec(List.of("qemu-img", "compare", a.toString(), compressed.toString()));
        Cli.Run ours = Cli.ours("compare", a.toString(), compressed.toString());
        assertEquals(4, theirs.exitCode(), theirs.stderr());
        assertEquals(4, ours.code(), ours.err());
        String where = "Error while reading offset " + 40 * 65536 + " of " + compressed + ": ";
        assertTrue(theirs.stderr().contains(where), theirs.stderr());
        assertTrue(ours.err().startsWith("qcow2-loom: " + where), ours.err());
    }

    /** Overwrites the start of compressed cluster {@code index}'s stream (64 KiB clusters, one L2 table). */
    private static void damageCompressedCluster(Path image, int index) throws Exception {
        try (FileChannel f = FileChannel.open(image, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer header = ByteBuffer.allocate(48);
            f.read(header, 0);
            long l1 = header.getLong(40);
            ByteBuffer entry = ByteBuffer.allocate(8);
            f.read(entry, l1);
            long l2 = entry.getLong(0) & 0x00fffffffffffe00L;
            f.read(entry.clear(), l2 + 8L * index);
            long descriptor = entry.getLong(0);
            assertTrue((descriptor & (1L << 62)) != 0, "compressed");
            long offset = descriptor & ((1L << 54) - 1); // cluster bits 16: the offset's 62 - (16 - 8) bits
            f.write(ByteBuffer.wrap(new byte[] {-1, -1, -1, -1, -1, -1, -1, -1}), offset);
        }
    }

    @Test
    void errorsAsQemuImgs() throws Exception {
        Path a = qcow2("a.qcow2", "1M");
        both(a, dir.resolve("missing.qcow2"));
        both(dir.resolve("missing.qcow2"), a);
        both("-T", "bogus", a, a);
        both("-f", "bogus", a, a);
        Files.writeString(dir.resolve("text.raw"), "hello");
        both(a, dir.resolve("text.raw"));
    }
}
