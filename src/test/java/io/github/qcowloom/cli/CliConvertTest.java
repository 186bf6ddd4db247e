package io.github.qcowloom.cli;

import static io.github.qcowloom.cli.Cli.ours;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** convert -O qcow2 checked by qemu-img: check clean, compare identical, zero ranges left unallocated. */
class CliConvertTest extends QemuFolderTest {
    private static final long MIB = 1 << 20;

    /** A 20 MiB source with data at assorted offsets, explicit zeroes at 6 MiB and nothing at 8–12 MiB. */
    private String source(String format) {
        String src = path("src." + format);
        Qemu.img("create", "-q", "-f", format, src, "20M");
        Qemu.ioFormat(format, Path.of(src), "write -P 0x11 0 64k", "write -P 0x22 1536 3k",
                "write -P 0x33 1048064 1k", "write -P 0x00 6M 1M", "write -P 0x44 7M 512",
                "write -P 0x55 12M 2M", "write -P 0x66 20971008 512");
        return src;
    }

    @ParameterizedTest
    @CsvSource(delimiter = ';', value = {
        "qcow2; ''", "qcow2; compat=0.10", "qcow2; cluster_size=4096,refcount_bits=1", "qcow2; compression_type=zstd",
        "raw; ''", "raw; compat=0.10", "raw; cluster_size=4096,refcount_bits=1", "raw; compression_type=zstd",
    })
    void convertsToAnIdenticalCleanQcow2(String format, String options) {
        String src = source(format);
        String dst = path("dst.qcow2");
        List<String> args = new ArrayList<>(List.of("convert", "-f", format, "-O", "qcow2"));
        if (!options.isEmpty()) {
            args.addAll(List.of("-o", options));
        }
        args.addAll(List.of(src, dst));
        Cli.Run r = ours(args.toArray(String[]::new));
        assertEquals(0, r.code(), r.err());

        Qemu.img("check", dst); // fails on leaks or corruptions (exit code 2 or 3)
        assertTrue(Qemu.img("compare", "-f", format, "-F", "qcow2", src, dst).contains("Images are identical"));
        for (QemuMap.Extent e : QemuMap.of(dst).overlapping(6 * MIB, 7 * MIB)) {
            assertFalse(e.data(), "written zeroes stay unallocated: " + e);
        }
        for (QemuMap.Extent e : QemuMap.of(dst).overlapping(8 * MIB, 12 * MIB)) {
            assertFalse(e.data(), "an unwritten range stays unallocated: " + e);
        }
        if (!options.isEmpty()) {
            String info = Qemu.img("info", dst);
            for (String kv : options.split(",")) {
                String key = kv.substring(0, kv.indexOf('='));
                if (key.equals("compat") || key.equals("compression_type")) {
                    assertTrue(info.contains(key.replace('_', ' ')), info);
                    assertTrue(info.contains(kv.substring(kv.indexOf('=') + 1)), info);
                }
            }
        }
    }

    @Test
    void withBackingCopiesOnlyWhatDiffers() {
        String base = path("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base, "8M");
        Qemu.io(Path.of(base), "write -P 0x11 0 8M");
        String src = path("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", src);
        Qemu.io(Path.of(src), "write -P 0x22 1M 64k", "write -z 4M 1M");
        String dst = path("dst.qcow2");
        Cli.Run r = ours("convert", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", src, dst);
        assertEquals(0, r.code(), r.err());

        Qemu.img("check", dst);
        assertTrue(Qemu.img("compare", src, dst).contains("Images are identical"));
        assertTrue(Qemu.img("info", dst).contains("backing file: base.qcow2"));
        for (QemuMap.Extent e : QemuMap.of(dst).overlapping(6 * MIB, 8 * MIB)) {
            assertEquals(1, e.depth(), "a range equal to the backing file comes from it: " + e);
        }
        for (QemuMap.Extent e : QemuMap.of(dst).overlapping(4 * MIB, 5 * MIB)) {
            assertEquals(0, e.depth(), "zeroes over backing data are the target's own: " + e);
        }
    }

    @Test
    void refusesCompressionAndUnknownFormats() {
        String src = path("s.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", src, "1M");
        Cli.Run c = ours("convert", "-c", "-O", "raw", src, path("c.raw"));
        assertEquals(1, c.code());
        assertTrue(c.err().contains("Compression not supported for this file format"), c.err());
        Cli.Run vmdk = ours("convert", "-O", "vmdk", src, path("v.vmdk"));
        assertEquals(1, vmdk.code());
        assertTrue(vmdk.err().contains("qcow2 or raw"), vmdk.err());
        Cli.Run badOpt = ours("convert", "-O", "qcow2", "-o", "foo=1", src, path("f.qcow2"));
        assertEquals(1, badOpt.code());
        assertTrue(badOpt.err().contains("Invalid parameter 'foo'"), badOpt.err());
    }

    /**
     * -S as qemu-img's: the same data, the same allocation (qemu-img map, host offsets aside) for every sparse size
     * and target (0: every byte written), and its refusals in its words.
     */
    @ParameterizedTest
    @CsvSource({"0, raw", "512, raw", "4k, raw", "64k, raw", "1M, raw", "16M, raw", "0, qcow2", "512, qcow2",
        "64k, qcow2", "1M, qcow2", "0, qcow2 -c", "1M, qcow2 -c", "0, qcow2 -B", "0, qcow2 -c -B", "64k, qcow2 -B"})
    void sparseSizeAsQemuImgs(String sparse, String target) {
        String src = source("qcow2");
        String format = target.split(" ")[0];
        List<String> flags = new ArrayList<>(List.of("-S", sparse, "-O", format));
        if (target.contains("-c")) {
            flags.add("-c");
        }
        if (target.contains("-B")) { // over a copy of the source, which then changes in places
            String base = path("base.qcow2");
            Qemu.img("convert", "-O", "qcow2", src, base);
            Qemu.io(Path.of(src), "write -P 0x77 2M 64k", "write -P 0 12M 64k", "write -P 0x78 16M 4k");
            flags.addAll(List.of("-B", base, "-F", "qcow2"));
        }
        String theirs = path("theirs." + format);
        String mine = path("mine." + format);
        List<String> q = new ArrayList<>(List.of("qemu-img", "convert"));
        q.addAll(flags);
        q.addAll(List.of(src, theirs));
        Qemu.run(q);
        List<String> o = new ArrayList<>(List.of("convert"));
        o.addAll(flags);
        o.addAll(List.of(src, mine));
        Cli.Run r = ours(o.toArray(String[]::new));
        assertEquals(0, r.code(), r.err());
        Qemu.img("compare", "-f", format, "-F", format, theirs, mine);
        if (!target.contains("-B")) {
            // Over a backing file qemu-img allocates by the source's layers, ours by what differs from the backing
            // file (the README says so): the data is the same, the allocation not.
            assertEquals(mapWithoutOffsets(format, theirs), mapWithoutOffsets(format, mine), flags.toString());
        }
    }

    /** qemu-img map's entries as the guest sees them ({@link Qemu#guestMap}). */
    static List<String> mapWithoutOffsets(String format, String image) {
        return Qemu.guestMap(Qemu.img("map", "--output=json", "-f", format, image));
    }

    @Test
    void sparseSizesQemuImgRefuses() {
        String src = source("qcow2");
        for (String sparse : List.of("1e3", "1000", "32M", "-1")) {
            Qemu.Result q = Qemu.exec(List.of("qemu-img", "convert", "-S", sparse, "-O", "raw", src, path("q.raw")));
            Cli.Run r = ours("convert", "-S", sparse, "-O", "raw", src, path("o.raw"));
            assertEquals(1, q.exitCode(), sparse);
            assertEquals(1, r.code(), sparse);
            assertEquals(q.stderr().replace("qemu-img: ", "qcow2-loom: "), r.err(), sparse);
        }
    }

    /**
     * -n writes into an existing target that holds other data: what reads as zeroes becomes zeroes there (holes, or
     * zero clusters), as qemu-img convert -n leaves it; data and allocation compared with qemu-img's own.
     */
    @ParameterizedTest
    @CsvSource({"4k, raw", "64k, raw", "0, raw", "4k, qcow2", "0, qcow2"})
    void intoAnExistingTargetAsQemuImgs(String sparse, String format) {
        String src = source("qcow2");
        String theirs = path("theirs." + format);
        String mine = path("mine." + format);
        for (String t : List.of(theirs, mine)) {
            Qemu.img("create", "-q", "-f", format, t, "24M");
            Qemu.ioFormat(format, Path.of(t), "write -P 0x99 0 24M");
        }
        Qemu.run(List.of("qemu-img", "convert", "-n", "-S", sparse, "-O", format, src, theirs));
        Cli.Run r = ours("convert", "-n", "-S", sparse, "-O", format, src, mine);
        assertEquals(0, r.code(), r.err());
        Qemu.img("compare", "-f", format, "-F", format, theirs, mine);
        assertEquals(mapWithoutOffsets(format, theirs), mapWithoutOffsets(format, mine));
        if (format.equals("qcow2")) {
            Qemu.img("check", mine);
        }
    }

    @Test
    void intoAnExistingTargetRefusalsAsQemuImgs() {
        String src = source("qcow2");
        String small = path("small.raw");
        Qemu.img("create", "-q", "-f", "raw", small, "1M");
        String fits = path("fits.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", fits, "20M");
        for (List<String> args : List.of(List.of("-O", "raw", src, small),
                List.of("-O", "qcow2", "-o", "cluster_size=4k", src, fits))) {
            List<String> q = new ArrayList<>(List.of("qemu-img", "convert", "-n"));
            q.addAll(args);
            Qemu.Result qr = Qemu.exec(q);
            List<String> o = new ArrayList<>(List.of("convert", "-n"));
            o.addAll(args);
            Cli.Run r = ours(o.toArray(String[]::new));
            assertEquals(1, qr.exitCode(), args.toString());
            assertEquals(1, r.code(), args.toString());
            assertEquals(qr.stderr().replace("qemu-img: ", "qcow2-loom: "), r.err(), args.toString());
        }
        Cli.Run r = ours("convert", "-n", "-c", "-B", src, "-O", "qcow2", src, fits); // refused, as not done
        assertEquals(1, r.code());
        assertTrue(r.err().contains("convert -n -c -B"), r.err());
    }

    /**
     * convert -n -B where the layers below the top change inside what the top leaves to them (a base of 4 KiB
     * clusters written in part) and the disk ends in a short cluster: qemu-img goes by the top layer's own status,
     * so what the top leaves to its backing file stays the target's, however the base below is made.
     */
    @Test
    void intoAnExistingImageWithBGoesByTheTopLayerAlone() {
        long size = (8 << 20) + 12288;
        String base = path("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", base, Long.toString(size));
        Qemu.io(Path.of(base), "write -P 0x11 0 8k", "write -P 0x12 100k 4k", "write -P 0x13 3M 68k",
                "write -P 0x14 8M 12k");
        String top = path("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top);
        Qemu.io(Path.of(top), "write -P 0x22 1M 64k", "write -P 0x23 3M 4k");
        String otherBase = path("other.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", otherBase, Long.toString(size));
        Qemu.io(Path.of(otherBase), "write -P 0x33 0 " + size);
        List<String> targets = List.of(path("theirs.qcow2"), path("mine.qcow2"));
        for (String t : targets) {
            Qemu.img("create", "-q", "-f", "qcow2", "-b", "other.qcow2", "-F", "qcow2", t);
        }
        List<String> args = new ArrayList<>(List.of("convert", "-n", "-B", "unused", "-O", "qcow2", top));
        Cli.Both both = Cli.intoTargets(args, targets.get(0), targets.get(1));
        assertEquals(0, both.theirs().exitCode(), both.theirs().stderr());
        assertEquals(0, both.mine().code(), both.mine().err());
        assertEquals(Qemu.img("map", "--output=json", targets.get(0)),
                Qemu.img("map", "--output=json", targets.get(1)));
        assertTrue(Qemu.img("compare", targets.get(0), targets.get(1)).contains("Images are identical"));
        Qemu.img("check", targets.get(1));
    }

    /**
     * convert -n -B as qemu-img's: only what the source's top layer holds (data and zeroes) is written, over a target
     * whose own backing file and data show through elsewhere. The same map, contents and exit code as qemu-img's.
     */
    @ParameterizedTest(name = "top {0}, convert {1}")
    @CsvSource(delimiter = '|', value = {"65536 | ''", "65536 | -S 0", "4096 | ''", "4096 | -S 8k",
        "65536,extended_l2=on | ''", "512 | ''"})
    void intoAnExistingImageCopiesTheTopLayerWithB(String topCluster, String options) {
        String base = path("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base, "8M");
        Qemu.io(Path.of(base), "write -P 0x11 0 8M");
        String top = path("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=" + topCluster, "-b", "base.qcow2", "-F", "qcow2",
                top);
        Qemu.io(Path.of(top), "write -P 0x22 1M 192k", "write -z 4M 1M", "write -P 0 6M 64k", "write -P 0x23 7M 4k",
                "write -z 7340032 4k", "write -P 0x24 7600000 1000");
        String otherBase = path("other.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", otherBase, "8M");
        Qemu.io(Path.of(otherBase), "write -P 0x33 0 8M");
        List<String> targets = List.of(path("theirs.qcow2"), path("mine.qcow2"));
        for (String t : targets) {
            Qemu.img("create", "-q", "-f", "qcow2", "-b", "other.qcow2", "-F", "qcow2", t);
            Qemu.io(Path.of(t), "write -P 0x44 0 64k", "write -P 0x45 5M 64k");
        }
        List<String> args = new ArrayList<>(List.of("convert", "-n"));
        if (!options.isEmpty()) {
            args.addAll(List.of(options.split(" ")));
        }
        args.addAll(List.of("-B", "unused", "-O", "qcow2", top));
        Cli.Both both = Cli.intoTargets(args, targets.get(0), targets.get(1));
        Qemu.Result theirs = both.theirs();
        Cli.Run mine = both.mine();

        assertEquals(0, theirs.exitCode(), theirs.stderr());
        assertEquals(0, mine.code(), mine.err());
        assertEquals(Qemu.img("map", "--output=json", targets.get(0)),
                Qemu.img("map", "--output=json", targets.get(1)));
        assertTrue(Qemu.img("compare", targets.get(0), targets.get(1)).contains("Images are identical"));
        Qemu.img("check", targets.get(1));
        Qemu.io(Path.of(targets.get(1)), "read -P 0x44 0 64k", "read -P 0x22 1M 192k", "read -P 0x33 2M 2M",
                "read -P 0 4M 1M", "read -P 0x45 5M 64k");
    }
}
