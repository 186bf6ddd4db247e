package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** resize checked by qemu-img and qemu-io. */
class CliResizeTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private String image(String size, String... ioCommands) {
        String img = dir.resolve("r.qcow2").toString();
        Qemu.img("create", "-q", "-f", "qcow2", img, size);
        if (ioCommands.length > 0) {
            Qemu.io(Path.of(img), ioCommands);
        }
        return img;
    }

    private static void assertVirtualSize(String img, long size) {
        String info = Qemu.img("info", "--output=json", img);
        assertTrue(info.contains("\"virtual-size\": " + size + ","), info);
    }

    @Test
    void growKeepsDataAndShowsZeroes() {
        String img = image("1M", "write -P 0x11 0 64k", "write -P 0x22 1040384 8k");
        Cli.Run r = ours("resize", img, "+3M");
        assertEquals(0, r.code(), r.err());
        assertEquals("Image resized.\n", r.out());
        Qemu.img("check", img);
        assertVirtualSize(img, 4L << 20);
        Qemu.io(Path.of(img), "read -P 0x11 0 64k", "read -P 0x22 1040384 8k", "read -P 0 1M 3M");
    }

    /**
     * An overlay grown over a longer backing file: QEMU zeroes the whole new range (bdrv_co_truncate's
     * BDRV_REQ_ZERO_WRITE), so that the backing file does not show through; same contents and allocation.
     */
    @Test
    void growOverALongerBackingFile() throws IOException {
        for (String size : new String[] {"6M", "10M", "7000k"}) {
            new TwoCopies(dir.resolve("grow" + size)).assertSame(f -> {
                Path base = f.resolve("b.qcow2");
                Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "8M");
                Qemu.io(base, "write -P 1 0 8M");
                Path top = f.resolve("o.qcow2");
                Qemu.imgIn(f, "create", "-q", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", top.toString(), "4000k");
                Qemu.io(top, "write -P 2 0 64k");
            }, "resize", java.util.List.of("-q", "@", size), "o.qcow2", "o.qcow2");
        }
    }

    /**
     * An external data file takes the new size, down and up, as QEMU truncates it (before, it kept its length); a raw
     * one's new clusters are linked to it, as QEMU links them, so what it holds there reads through the image
     * (before, the new range stayed unallocated and read as zeroes).
     */
    @ParameterizedTest
    @ValueSource(strings = {"", ",data_file_raw=on"})
    void anExternalDataFileTakesTheNewSize(String options) throws IOException {
        boolean raw = !options.isEmpty();
        Path root = dir.resolve(raw ? "raw" : "plain");
        TwoCopies copies = new TwoCopies(root);
        TwoCopies.Setup setup = f -> {
            // named absolutely: QEMU 7.2 opens a data file's name from its working directory
            Qemu.img("create", "-q", "-f", "qcow2", "-o", "data_file=" + f.resolve("d.raw") + options,
                    f.resolve("i.qcow2").toString(), "10M");
            Qemu.io(f.resolve("i.qcow2"), "write -P 1 0 1M");
        };
        copies.assertSame(setup, "resize", java.util.List.of("-q", "@", "20M"), "i.qcow2", "i.qcow2");
        for (String side : new String[] {"qemu1", "ours1"}) {
            assertEquals(20L << 20, Files.size(root.resolve(side).resolve("d.raw")), side);
            Qemu.ioFormat("raw", root.resolve(side).resolve("d.raw"), "write -P 0x55 15M 64k");
            String read = Qemu.io(root.resolve(side).resolve("i.qcow2"),
                    "read -P " + (raw ? "0x55" : "0") + " 15M 64k");
            assertTrue(read.contains("read 65536/65536"), side + ": " + read);
        }
        // A data file longer than the new size: a raw one keeps its length, another is cut to it, as QEMU's
        TwoCopies.Setup longer = f -> {
            setup.build(f);
            try (java.io.RandomAccessFile d = new java.io.RandomAccessFile(f.resolve("d.raw").toFile(), "rw")) {
                d.setLength(30L << 20);
            }
        };
        copies.assertSame(longer, "resize", java.util.List.of("-q", "@", "20M"), "i.qcow2", "i.qcow2");
        assertEquals(raw ? 30L << 20 : 20L << 20, Files.size(root.resolve("ours2").resolve("d.raw")));
        assertEquals(Files.size(root.resolve("qemu2").resolve("d.raw")),
                Files.size(root.resolve("ours2").resolve("d.raw")));
        if (!raw) {
            copies.assertSame(setup, "resize", java.util.List.of("-q", "--shrink", "@", "4M"), "i.qcow2", "i.qcow2");
            assertEquals(4L << 20, Files.size(root.resolve("ours3").resolve("d.raw")));
            assertEquals(Files.size(root.resolve("qemu3").resolve("d.raw")),
                    Files.size(root.resolve("ours3").resolve("d.raw")));
        }
    }

    /**
     * Version 2 has no zero flags (QEMU refuses the grow there): zero bytes are written only where the backing file
     * would show through, not over the whole new range.
     */
    @Test
    void growAVersion2OverlayFarPastItsBackingFile() throws IOException {
        Path base = dir.resolve("b2.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "8M");
        Qemu.io(base, "write -P 1 0 8M");
        Path top = dir.resolve("o2.qcow2");
        Qemu.imgIn(dir, "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", "b2.qcow2", "-F", "qcow2",
                top.toString(), "4000k");
        Cli.Run r = ours("resize", top.toString(), "1G");
        assertEquals(0, r.code(), r.err());
        assertTrue(Files.size(top) < 16 << 20, "zero bytes for the 4 MiB the backing file covers, not 1 GiB: "
                + Files.size(top));
        Qemu.io(top, "read -P 1 0 4000k", "read -P 0 4000k 4192k", "read -P 0 8M 1000M");
        Qemu.img("check", top.toString());
    }

    @Test
    void growFarEnoughToGrowL1() {
        String img = image("1M", "write -P 0x33 512k 64k");
        Cli.Run r = ours("resize", img, "600G");
        assertEquals(0, r.code(), r.err());
        Qemu.img("check", img);
        assertVirtualSize(img, 600L << 30);
        Qemu.io(Path.of(img), "read -P 0x33 512k 64k", "read -P 0 599G 1M", "write -P 0x44 599G 64k",
                "read -P 0x44 599G 64k");
        Qemu.img("check", img);
    }

    @Test
    void shrinkNeedsTheOption() {
        String img = image("4M", "write -P 0x11 0 64k");
        Cli.Run r = ours("resize", img, "-1M");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("Use the --shrink option to perform a shrink operation."), r.err());
        assertVirtualSize(img, 4L << 20);
    }

    @Test
    void shrinkOfAnUnallocatedTail() {
        String img = image("4M", "write -P 0x11 0 64k");
        Cli.Run r = ours("resize", "--shrink", img, "-1M");
        assertEquals(0, r.code(), r.err());
        Qemu.img("check", img);
        assertVirtualSize(img, 3L << 20);
        Qemu.io(Path.of(img), "read -P 0x11 0 64k");
    }

    @Test
    void shrinkOverDataFails() {
        String img = image("4M", "write -P 0x11 3M 64k");
        Cli.Run r = ours("resize", "--shrink", img, "2M");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("discard it first"), r.err());
        Qemu.img("check", img);
        assertVirtualSize(img, 4L << 20);
    }

    /**
     * Sizes qemu-img refuses, refused in its words: not whole sectors, not positive, past its block layer's limit
     * (2^63 - 2^30), an L1 table past 32 MiB, a raw file past the file system's limit; for qcow2 by resize and by
     * amend's size=. Each run by qemu-img first, then by ours, on the same file.
     */
    @Test
    void sizesQemuImgRefusesAreRefusedInItsWords() throws IOException {
        String img = image("1M");
        Path raw = Files.write(dir.resolve("r.raw"), new byte[4096]);
        for (String size : new String[] {"+1000", "1000001", "9223372035781033984", "9223372035781034496", "3P",
            "1E"}) {
            Cli.sameAsQemuImg("resize", img, size);
            Cli.sameAsQemuImg("amend", "-o", "size=" + size, img);
        }
        for (String size : new String[] {"9223372035781033984", "9223372035781034496", "3P", "1E"}) {
            // a raw file takes any other length; these the file system's limit refuses (ext4's: 16 TiB)
            Cli.sameAsQemuImg("resize", "-f", "raw", raw, size);
        }
        Cli.sameAsQemuImg("resize", "--shrink", img, "-2M");
        Qemu.img("check", img);
        assertVirtualSize(img, 1 << 20);
    }

    @Test
    void rawFilesTakeTheNewLength() throws IOException {
        Path raw = dir.resolve("r.raw");
        Files.write(raw, new byte[4096]);
        Cli.Run r = ours("resize", "-f", "raw", raw.toString(), "+1M");
        assertEquals(0, r.code(), r.err());
        assertEquals(4096 + (1 << 20), Files.size(raw));
    }
}
