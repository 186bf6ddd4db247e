package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * measure against qemu-img measure: the same sizes, lines and errors for sizes and options alone and for images
 * holding data (what a convert would need), and a qcow2 image created at that size holds the data qemu-img
 * converts into it.
 */
class CliMeasureTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    private static String both(Object... args) {
        return Cli.sameAsQemuImg("measure", args);
    }

    @Test
    void sizesAlone() {
        for (String size : List.of("0", "1000", "1M", "1G", "10G", "1T", "100T")) {
            both("--size", size);
            both("-O", "qcow2", "--size", size);
            both("-O", "qcow2", "--size", size, "--output=json");
        }
        for (String o : List.of("cluster_size=512", "cluster_size=4k", "cluster_size=2M", "extended_l2=on",
                "extended_l2=on,cluster_size=2M", "refcount_bits=1", "refcount_bits=64", "compat=0.10",
                "preallocation=metadata", "preallocation=falloc", "preallocation=full", "lazy_refcounts=on",
                "compression_type=zstd", "size=5G")) {
            both("-O", "qcow2", "-o", o, "--size", "10G");
        }
        both("-O", "qcow2", "-o", "size=5G");
        // Sizes near 2^63 and 2^64 (QEMU's are unsigned), and the check of the size asked, not the source's.
        both("--size", "9223372036854775807");
        both("-O", "qcow2", "--size", "9223372036854775296");
        both("-O", "qcow2", "-o", "encryption=on,lazy_refcounts=y,encrypt.format=aes", "--size", "1G");
    }

    @Test
    void imagesHoldingData() {
        Path a = dir.resolve("a.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", a.toString(), "1G");
        Qemu.io(a, "write -P 0x11 0 3M");
        Qemu.io(a, "write -P 0x22 100M 5000");
        Qemu.io(a, "write -z 200M 1M");
        Qemu.io(a, "write -P 0x33 511M 2M");
        both("-O", "qcow2", a);
        both("-O", "qcow2", "--output=json", a);
        both("-O", "qcow2", "-o", "cluster_size=4k", a);
        both("-O", "qcow2", "-o", "cluster_size=2M", a);
        both("-O", "qcow2", "-o", "compat=0.10", a);
        both("-O", "qcow2", "-o", "backing_file=b.qcow2", a);
        both("-O", "raw", a);
        both(a);
        Path raw = dir.resolve("a.raw");
        Qemu.img("convert", "-O", "raw", a.toString(), raw.toString());
        both("-O", "qcow2", raw);
        both("-O", "qcow2", "-f", "raw", raw);
        Path overlay = dir.resolve("o.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", a.toString(), "-F", "qcow2", overlay.toString());
        Qemu.io(overlay, "write -P 0x44 800M 1M");
        both("-O", "qcow2", overlay);
        Path compressed = dir.resolve("c.qcow2");
        Qemu.img("convert", "-c", "-O", "qcow2", a.toString(), compressed.toString());
        both("-O", "qcow2", compressed);

        // The measured size is what the conversion takes: our own convert's output stays within it.
        String required = Cli.succeeding("measure", "-O", "qcow2", "--output=json", a.toString());
        long bytes = Long.parseLong(required.replaceAll("(?s).*\"required\": (\\d+).*", "$1"));
        Path target = dir.resolve("t.qcow2");
        Cli.succeeding("convert", "-O", "qcow2", a.toString(), target.toString());
        assertTrue(target.toFile().length() <= bytes, target.toFile().length() + " > " + bytes);
    }

    /**
     * A source preallocated with metadata alone: its clusters never written are holes of its file, which QEMU's
     * block status finds (BDRV_BLOCK_RECURSE) and measure leaves out; they once counted as data here.
     */
    @Test
    void metadataPreallocatedSource() {
        Path p = dir.resolve("p.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", p.toString(), "256M");
        Qemu.io(p, "write -P 0x11 1M 1M", "write -P 0x22 100M 4k");
        String out = both("-O", "qcow2", p);
        long required = Long.parseLong(out.replaceAll("(?s)required size: (\\d+).*", "$1"));
        assertTrue(required < 4 << 20, "the 1 MiB and 4 KiB written, and metadata: " + out);
        both("-O", "raw", p);
    }

    @Test
    void errorsAsQemuImgs() {
        Path a = dir.resolve("a.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", a.toString(), "1M");
        both();
        both("--size", "1G", a);
        both("-f", "qcow2", "--size", "1G");
        both("-O", "qcow2", "-o", "cluster_size=512", "--size", "100T");
        both("-O", "qcow2", "-o", "foo=1", "--size", "1G");
        both("-O", "raw", "-o", "cluster_size=4k", "--size", "1G");
        both("-O", "qcow2", "-o", "cluster_size=abc", "--size", "1G");
        both("-O", "qcow2", "-o", "cluster_size=3000", "--size", "1G");
        both("-O", "qcow2", "-o", "extended_l2=maybe", "--size", "1G");
        both("-O", "qcow2", "-o", "extended_l2=on,cluster_size=4k", "--size", "1G");
        both("-O", "qcow2", "-o", "refcount_bits=x", "--size", "1G");
        both("-O", "qcow2", "-o", "refcount_bits=3", "--size", "1G");
        both("-O", "qcow2", "-o", "compat=0.10,refcount_bits=8", "--size", "1G");
        both("-O", "qcow2", "-o", "compat=2", "--size", "1G");
        both("-O", "qcow2", "-o", "preallocation=xx", "--size", "1G");
        both("--size", "-1");
        both("--output=xml", "--size", "1G");
        both("-f", "qcow2");
        both("-O", "qcow2", "-o", ",x", "--size", "1G");
        both(a, a);
        both("-O", "qcow2", "-o", "cluster_size=512,size=100T", a);
        Path big = dir.resolve("big.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", big.toString(), "100T");
        both("-O", "qcow2", "-o", "cluster_size=512", big);
        both(dir.resolve("missing.qcow2"));
    }
}
