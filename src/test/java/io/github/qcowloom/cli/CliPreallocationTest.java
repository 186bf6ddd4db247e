package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static io.github.qcowloom.cli.Cli.sameAsQemuImg;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Preallocation side by side with qemu-img on the same file system: {@code create -o preallocation=falloc|full}
 * (qcow2 and raw) and {@code resize --preallocation=metadata|falloc|full}. Compared: what qemu-img map reports
 * (host offsets aside: the data lies after each L2 table here, as metadata preallocation places it), the host
 * space taken, {@code qemu-img check}, the contents, and the words of each refusal.
 */
class CliPreallocationTest extends QemuFolderTest {
    /** qemu-img map's entries as the guest sees them ({@link Qemu#guestMap}). */
    private List<String> guestMap(String format, String image) {
        return Qemu.guestMap(Qemu.imgIn(dir, "map", "--output=json", "-f", format, image));
    }

    /** Bytes the file takes on the host, from qemu-img info. */
    private long actualSize(String format, String image) {
        return Long.parseLong(Qemu.imgIn(dir, "info", "--output=json", "-f", format, image)
                .replaceAll("(?s).*\"actual-size\": (\\d+).*", "$1"));
    }

    /** Ours takes the space qemu-img's takes, give or take the metadata QEMU places apart (a refcount area). */
    private void sameSpace(String format, String theirs, String mine) {
        long t = actualSize(format, theirs);
        long m = actualSize(format, mine);
        assertTrue(Math.abs(t - m) <= Math.max(256 << 10, t / 20), "host space: qemu-img " + t + ", ours " + m);
    }

    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {"preallocation=falloc", "preallocation=full",
        "preallocation=falloc,cluster_size=4096", "preallocation=full,cluster_size=512",
        "preallocation=falloc,extended_l2=on", "preallocation=full,compat=0.10",
        "preallocation=falloc,data_file=DATA", "preallocation=full,data_file=DATA,data_file_raw=on"})
    void createAsQemuImg(String options) {
        String theirs = path("theirs.qcow2");
        String mine = path("mine.qcow2");
        // qemu-img names a data file relative to its working folder, ours to the image's: the same folder here.
        Qemu.imgIn(dir, "create", "-q", "-f", "qcow2", "-o", options.replace("DATA", "theirs.data"), theirs, "3M");
        Cli.Run r = ours("create", "-q", "-f", "qcow2", "-o", options.replace("DATA", "mine.data"), mine, "3M");
        assertEquals(0, r.code(), r.err());
        assertEquals(guestMap("qcow2", theirs), guestMap("qcow2", mine), options);
        sameSpace("qcow2", theirs, mine);
        if (options.contains("data_file")) {
            sameSpace("raw", path("theirs.data"), path("mine.data"));
        }
        Qemu.imgIn(dir, "check", mine);
        Qemu.imgIn(dir, "compare", theirs, mine);
    }

    @ParameterizedTest
    @ValueSource(strings = {"off", "falloc", "full", "metadata", "bogus"})
    void createRawAsQemuImg(String mode) {
        String out = sameAsQemuImg("create", "-f", "raw", "-o", "preallocation=" + mode, path("r.raw"), "1M")
                .replace(path("r.raw"), "F");
        if (!mode.equals("metadata") && !mode.equals("bogus")) {
            assertEquals("Formatting 'F', fmt=raw size=1048576 preallocation=" + mode + "\n", out);
            assertEquals(actualSize("raw", path("r.raw")) >= 1 << 20, !mode.equals("off"), mode);
        }
        sameAsQemuImg("create", "-f", "qcow2", "-o", "preallocation=" + mode, path("x.qcow2"), "1M");
    }

    /**
     * resize --preallocation from an odd size (a part of a cluster already in the disk) where the mode writes the
     * host's blocks: raw and qcow2, with
     * 512-byte, 64 KiB and extended-L2 clusters, and a qcow2 image over a backing file that reaches past its end
     * (the new space zeroed first, as QEMU's truncate does).
     */
    @ParameterizedTest
    @CsvSource({"raw, metadata, ''", "raw, falloc, ''", "raw, full, ''", "qcow2, metadata, ''",
        "qcow2, falloc, ''", "qcow2, full, ''", "qcow2, falloc, cluster_size=512",
        "qcow2, metadata, extended_l2=on", "qcow2, full, extended_l2=on", "qcow2, falloc, backing"})
    void resizeAsQemuImg(String format, String mode, String options) throws IOException {
        String theirs = path("theirs." + format);
        String mine = path("mine." + format);
        String base = path("base.qcow2");
        if (options.equals("backing")) {
            Qemu.img("create", "-q", "-f", "qcow2", base, "4M");
            Qemu.io(Path.of(base), "write -P 0x5b 0 4M");
        }
        for (String image : List.of(theirs, mine)) {
            List<String> create = new ArrayList<>(List.of("create", "-q", "-f", format));
            if (options.equals("backing")) {
                create.addAll(List.of("-b", base, "-F", "qcow2"));
            } else if (!options.isEmpty()) {
                create.addAll(List.of("-o", options));
            }
            // From an odd size (the last cluster in part), but for metadata: QEMU places that cluster without writing
            // it, and its old part then shows as data or as zeroes by where the host's blocks lie.
            create.addAll(List.of(image, mode.equals("metadata") ? "1M" : "1000k"));
            Qemu.img(create.toArray(String[]::new));
            Qemu.ioFormat(format, Path.of(image), "write -P 0x11 64k 64k");
        }
        Qemu.Result q = Qemu.exec(List.of("qemu-img", "resize", "-f", format, "--preallocation=" + mode, theirs,
                "+2M"));
        Cli.Run r = ours("resize", "-f", format, "--preallocation=" + mode, mine, "+2M");
        assertEquals(q.exitCode(), r.code(), r.err());
        assertEquals(q.stdout(), r.out());
        assertEquals(q.stderr().replace("qemu-img: ", "qcow2-loom: "), r.err());
        if (r.code() != 0) {
            return; // raw metadata: refused by both, in the same words
        }
        assertEquals(guestMap(format, theirs), guestMap(format, mine));
        sameSpace(format, theirs, mine);
        Qemu.img("compare", "-f", format, "-F", format, theirs, mine);
        if (format.equals("qcow2")) {
            Qemu.img("check", mine);
        }
    }

    /**
     * Over a backing file the guest reads the same after the resize as with qemu-img's: the new space zeroes (with
     * extended L2 the zero bits stay, where a new entry's bitmap would let the backing file show through), the old
     * last cluster's head the backing file's bytes, and a guest's zeroes in the old space stay zeroes.
     */
    @ParameterizedTest
    @CsvSource({"metadata, off, 1M", "full, off, 1M", "metadata, on, 1M", "full, on, 1M", "falloc, on, 1M",
        "metadata, off, 96k", "falloc, off, 96k", "full, off, 96k", "metadata, on, 96k"})
    void resizeOverABackingFileKeepsWhatTheGuestReads(String mode, String extendedL2, String baseSize)
            throws IOException {
        String base = path("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base, baseSize);
        Qemu.io(Path.of(base), "write -P 0xaa 0 " + baseSize);
        String theirs = path("theirs.qcow2");
        String mine = path("mine.qcow2");
        for (String image : List.of(theirs, mine)) {
            Qemu.img("create", "-q", "-f", "qcow2", "-o", "extended_l2=" + extendedL2, "-b", base, "-F", "qcow2",
                    image, "96k");
            Qemu.io(Path.of(image), "write -z 32k 16k");
        }
        Qemu.img("resize", "--preallocation=" + mode, theirs, "512k");
        Cli.Run r = ours("resize", "--preallocation=" + mode, mine, "512k");
        assertEquals(0, r.code(), r.err());
        Qemu.img("compare", theirs, mine);
        Qemu.img("check", mine);
        if (extendedL2.equals("off") && baseSize.equals("1M")) {
            // The new space zeroed over the backing file: data clusters, or with metadata zero clusters placed
            // (map says no data), as in qemu-img's.
            assertEquals(guestMap("qcow2", theirs), guestMap("qcow2", mine));
        }
    }

    /**
     * A raw data file grows with the disk before the clusters are placed at its new end: that space is still a hole,
     * which metadata preallocation leaves as it is and falloc reserves, rather than zeroes written over it.
     */
    @ParameterizedTest
    @ValueSource(strings = {"metadata", "falloc"})
    void resizeWithARawDataFileTakesTheSpaceQemuImgTakes(String mode) {
        for (String name : List.of("theirs", "mine")) {
            Qemu.imgIn(dir, "create", "-q", "-f", "qcow2", "-o", "data_file=" + name + ".data,data_file_raw=on",
                    path(name + ".qcow2"), "1M");
        }
        Qemu.imgIn(dir, "resize", "--preallocation=" + mode, path("theirs.qcow2"), "9M");
        Cli.Run r = ours("resize", "--preallocation=" + mode, path("mine.qcow2"), "9M");
        assertEquals(0, r.code(), r.err());
        sameSpace("raw", path("theirs.data"), path("mine.data"));
        assertEquals(guestMap("qcow2", path("theirs.qcow2")), guestMap("qcow2", path("mine.qcow2")));
        Qemu.imgIn(dir, "check", path("mine.qcow2"));
    }

    /**
     * 512-byte clusters with 64-bit refcounts: the growth makes the refcount table grow (twice), and a table freed
     * during the resize lies in the space the resize took; the new space still reads as zeroes, all of it.
     */
    @ParameterizedTest
    @ValueSource(strings = {"falloc", "full"})
    void aGrowthThatMovesTheRefcountTableStillReadsZeroes(String mode) {
        String image = path("small.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", image, "1M");
        Cli.Run r = ours("resize", "--preallocation=" + mode, image, "17271808");
        assertEquals(0, r.code(), r.err());
        Qemu.io(Path.of(image), "read -P 0 0 17271808"); // fails the test on a byte that is not zero
        Qemu.img("check", image);
    }

    /** resize's refusals with --preallocation, in qemu-img's words and order (a shrink is refused before --shrink). */
    @Test
    void resizeRefusalsAsQemuImgs() {
        for (String format : List.of("raw", "qcow2")) {
            String image = path("s." + format);
            Qemu.img("create", "-q", "-f", format, image, "4M");
            sameAsQemuImg("resize", "-f", format, "--preallocation=falloc", image, "2M");
            sameAsQemuImg("resize", "-f", format, "--shrink", "--preallocation=full", image, "2M");
            sameAsQemuImg("resize", "-f", format, "--preallocation=bogus", image, "8M");
            sameAsQemuImg("resize", "-f", format, "--preallocation=falloc", image, "4M"); // the same size
            sameAsQemuImg("resize", "-f", format, "--preallocation=metadata", image, "+0");
            sameAsQemuImg("resize", "-f", format, "--shrink", "--preallocation=off", image, "2M");
        }
    }
}
