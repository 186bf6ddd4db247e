package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The CLI's create, info and convert side by side with qemu-img on the same files. */
class CliInteropTest extends QemuFolderTest {
    @ParameterizedTest
    @ValueSource(strings = {
        "",
        "compat=0.10",
        "cluster_size=4096,refcount_bits=2,lazy_refcounts=on",
        "extended_l2=on,compression_type=zstd",
        "data_file=x.data,data_file_raw=on",
    })
    void infoMatchesQemuImgInBothFormats(String options) throws IOException {
        String img = path("i.qcow2");
        List<String> create = new java.util.ArrayList<>(List.of("create", "-q", "-f", "qcow2"));
        if (!options.isEmpty()) {
            create.addAll(List.of("-o", options));
        }
        create.addAll(List.of(img, "3M"));
        Qemu.imgIn(dir, create.toArray(String[]::new));
        Qemu.io(Path.of(img), "write -P 0x11 0 64k");
        if (!options.contains("data_file")) {
            // QEMU refuses internal snapshots in images with an external data file.
            Qemu.img("snapshot", "-c", "snap one", img);
        }
        assertEquals(Qemu.img("info", "--output=json", img), ours("info", "--output=json", img).out());
        assertEquals(Qemu.img("info", img), ours("info", img).out());
    }

    @Test
    void infoShowsBackingFileWithoutOpeningIt() {
        String img = path("b.qcow2");
        // -u: the backing file does not exist; info must not try to open it.
        Qemu.img("create", "-q", "-f", "qcow2", "-u", "-b", "missing.raw", "-F", "raw", img, "1M");
        Cli.Run r = ours("info", "--output=json", img);
        assertEquals(0, r.code(), r.err());
        assertEquals(Qemu.img("info", "--output=json", "-U", img), r.out());
    }

    @Test
    void createThenQemuChecksAndWrites() {
        String img = path("c.qcow2");
        Cli.Run r = ours("create", "-f", "qcow2", "-o", "cluster_size=16k,refcount_bits=8,extended_l2=on", img, "10M");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("Formatting '" + img + "', fmt=qcow2 cluster_size=16384 extended_l2=on"),
                r.out());
        Qemu.img("check", img);
        Qemu.io(Path.of(img), "write -P 0x22 1k 3k", "read -P 0x22 1k 3k");
        Qemu.img("check", img);
    }

    // A raw file whose length is not whole sectors is served as qemu-img serves it: rounded up, the tail zeroes.
    @Test
    void aRawFileOfAnOddLengthIsWholeSectorsAsInQemu() throws IOException {
        Path raw = dir.resolve("odd.raw");
        byte[] bytes = new byte[1_000_001];
        Arrays.fill(bytes, (byte) 0x42);
        Files.write(raw, bytes);
        String theirs = Qemu.img("info", "--output=json", "-f", "raw", raw.toString());
        assertTrue(theirs.contains("\"virtual-size\": 1000448"), theirs);
        Cli.Run info = ours("info", "--output=json", "-f", "raw", raw.toString());
        assertTrue(info.out().contains("\"virtual-size\": 1000448"), info.out() + info.err());
        Qemu.img("convert", "-f", "raw", "-O", "raw", raw.toString(), path("theirs.raw"));
        assertEquals(0, ours("convert", "-f", "raw", "-O", "raw", raw.toString(), path("ours.raw")).code());
        assertArrayEquals(Files.readAllBytes(dir.resolve("theirs.raw")), Files.readAllBytes(dir.resolve("ours.raw")));
        Cli.Run compressed = ours("convert", "-f", "raw", "-O", "qcow2", "-c", raw.toString(), path("c.qcow2"));
        assertEquals(0, compressed.code(), compressed.err());
        Qemu.img("compare", "-f", "raw", "-F", "qcow2", raw.toString(), path("c.qcow2"));
    }

    // A header size past whole sectors: qemu-img info shows the sectors the disk has, and so does ours.
    @Test
    void infoShowsAnOddSizeAsTheWholeSectorsQemuServes() throws IOException {
        String img = path("odd.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img, "16M");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(img, "rw")) {
            f.seek(24);
            f.writeLong((16 << 20) + 1);
        }
        String theirs = Qemu.img("info", "--output=json", img);
        assertTrue(theirs.contains("\"virtual-size\": 16777216"), theirs);
        Cli.Run ours = ours("info", "--output=json", img);
        assertTrue(ours.out().contains("\"virtual-size\": 16777216"), ours.out());
        assertTrue(ours("info", img).out().contains("virtual size: 16 MiB (16777216 bytes)"));
    }

    // Images QEMU could not open are refused: one backed by itself (qemu-img compares the names as given, ours the
    // files they reach, so this relative name against an absolute one passes qemu-img), one whose backing format
    // is not one this tool reads.
    @Test
    void createRefusesItselfAsBackingAndUnknownBackingFormats() throws IOException {
        String base = path("base.qcow2");
        assertEquals(0, ours("create", "-q", base, "1M").code());
        Cli.Run self = ours("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", base, "1M");
        assertEquals(1, self.code(), self.err());
        assertTrue(self.err().contains("Trying to create an image with the same filename as the backing file"),
                self.err());
        Qemu.img("check", base);
        Cli.Run bogus = ours("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "bogus", path("b.qcow2"));
        assertEquals(1, bogus.code(), bogus.err());
        assertTrue(bogus.err().contains("b.qcow2: Unknown driver 'bogus'\nCould not open backing image."),
                bogus.err());
        assertTrue(Files.notExists(dir.resolve("b.qcow2")));
    }

    @Test
    void createWithBackingTakesItsSize() throws IOException {
        String base = path("base.qcow2");
        assertEquals(0, ours("create", "-q", base, "7M").code());
        Cli.Run r = ours("create", "-q", "-b", "base.qcow2", "-F", "qcow2", path("top.qcow2"));
        assertEquals(0, r.code(), r.err());
        assertTrue(Qemu.img("info", "--output=json", path("top.qcow2")).contains("\"virtual-size\": 7340032"));
    }

    @Test
    void createErrorsLikeQemuImg() {
        Cli.Run noSize = ours("create", path("n.qcow2"));
        assertEquals(1, noSize.code());
        assertTrue(noSize.err().contains("Image creation needs a size parameter"), noSize.err());
        Cli.Run badOpt = ours("create", "-o", "foo=1", path("n.qcow2"), "1M");
        assertEquals(1, badOpt.code());
        assertTrue(badOpt.err().contains("Invalid parameter 'foo'"), badOpt.err());
        Cli.Run noFmt = ours("create", "-b", "x.raw", path("n.qcow2"), "1M"); // opened first, as qemu-img's
        assertEquals(1, noFmt.code());
        assertTrue(noFmt.err().contains("x.raw': No such file or directory\nCould not open backing image."),
                noFmt.err());
        Cli.Run unsafe = ours("create", "-u", "-b", "x.raw", path("n.qcow2"), "1M");
        assertEquals(1, unsafe.code());
        assertTrue(unsafe.err().endsWith("n.qcow2: Backing file specified without backing format\n"), unsafe.err());
        Cli.Run missing = ours("info", path("nothing.qcow2"));
        assertEquals(1, missing.code());
        assertTrue(missing.err().contains("No such file or directory"), missing.err());
    }

    @Test
    void convertToRawEqualsQemuImgAndStaysSparse() throws IOException {
        String img = path("s.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img, "64M");
        Qemu.io(Path.of(img), "write -P 0x33 0 1M", "write -P 0x44 40M 3M", "write -P 0x55 63M 1M");
        Cli.Run r = ours("convert", "-O", "raw", img, path("ours.raw"));
        assertEquals(0, r.code(), r.err());
        Qemu.img("convert", "-O", "raw", img, path("qemu.raw"));
        assertArrayEquals(Files.readAllBytes(dir.resolve("qemu.raw")), Files.readAllBytes(dir.resolve("ours.raw")));
        long allocated = Images.hostBytes(Path.of(path("ours.raw")));
        assertTrue(allocated < (16L << 20), "zero chunks stay holes; allocated " + allocated);
    }
}
