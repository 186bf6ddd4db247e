package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.github.qcowloom.testing.BitmapFiles;
import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * convert --bitmaps against qemu-img's: the same bitmaps in the target (names, flags, granularities, and the bits as
 * qemu-nbd reads them), and the same refusals and warnings, word for word.
 */
class CliConvertBitmapsTest {
    @TempDir
    Path dir;
    private Path source;

    @BeforeEach
    void source() throws Exception {
        Qemu.assume();
        source = BitmapFiles.qemuImageWithBitmaps(dir.resolve("src.qcow2"), String.valueOf((64 << 20) + 3072), "64k");
        Qemu.img("bitmap", "--disable", source.toString(), "fine");
    }

    /** Runs convert with {@code args} (TARGET for the target) with both tools; same answers; returns both targets. */
    private List<Path> sameConvert(String... args) {
        Path theirs = dir.resolve("theirs.qcow2");
        Path ours = dir.resolve("ours.qcow2");
        List<String> q = new ArrayList<>(List.of("qemu-img", "convert"));
        List<String> o = new ArrayList<>(List.of("convert"));
        for (String a : args) {
            q.add(a.equals("TARGET") ? theirs.toString() : a);
            o.add(a.equals("TARGET") ? ours.toString() : a);
        }
        Qemu.Result expected = Qemu.exec(q);
        Cli.Run run = Cli.ours(o.toArray(String[]::new));
        String context = List.of(args) + ": qemu-img said " + expected.stderr() + " ours " + run.err();
        assertEquals(expected.exitCode(), run.code(), context);
        assertEquals(expected.stderr().replace("qemu-img: ", "qcow2-loom: "), run.err(), context);
        return List.of(theirs, ours);
    }

    private static void sameBitmaps(List<Path> targets) throws Exception {
        Path theirs = targets.get(0);
        Path ours = targets.get(1);
        assertEquals(BitmapFiles.qemuInfoBitmaps(theirs), BitmapFiles.qemuInfoBitmaps(ours));
        for (String bitmap : List.of("b0", "fine", "coarse")) {
            assertEquals(BitmapFiles.qemuDirtyMap(theirs, bitmap), BitmapFiles.qemuDirtyMap(ours, bitmap), bitmap);
        }
        Qemu.run(List.of("qemu-img", "check", "-q", ours.toString()));
    }

    @Test
    void theBitmapsAreCopiedAsQemuImgCopiesThem() throws Exception {
        sameBitmaps(sameConvert("--bitmaps", "-O", "qcow2", source.toString(), "TARGET"));
        sameBitmaps(sameConvert("--bitmaps", "-O", "qcow2", "-o", "cluster_size=512", source.toString(), "TARGET"));
        sameBitmaps(sameConvert("--bitmaps", "-c", "-O", "qcow2", source.toString(), "TARGET"));
        // Into an existing image without them; then again, where they exist already.
        Path theirs = dir.resolve("theirs.qcow2");
        Path ours = dir.resolve("ours.qcow2");
        for (Path t : List.of(theirs, ours)) {
            Files.deleteIfExists(t);
            Qemu.img("create", "-q", "-f", "qcow2", t.toString(), String.valueOf((64 << 20) + 3072));
        }
        sameBitmaps(sameConvert("--bitmaps", "-n", "-O", "qcow2", source.toString(), "TARGET"));
        sameConvert("--bitmaps", "-n", "-O", "qcow2", source.toString(), "TARGET");
        // A larger target: no bitmap can be filled (the first tried is the last listed); then one name taken.
        for (Path t : List.of(theirs, ours)) {
            Files.delete(t);
            Qemu.img("create", "-q", "-f", "qcow2", t.toString(), "65M");
        }
        sameConvert("--bitmaps", "-n", "-O", "qcow2", source.toString(), "TARGET");
        assertEquals("", BitmapFiles.qemuInfoBitmaps(ours));
        for (Path t : List.of(theirs, ours)) {
            Files.delete(t);
            Qemu.img("create", "-q", "-f", "qcow2", t.toString(), String.valueOf((64 << 20) + 3072));
            Qemu.img("bitmap", "--add", t.toString(), "fine");
        }
        sameConvert("--bitmaps", "-n", "-O", "qcow2", source.toString(), "TARGET");
        assertEquals(BitmapFiles.qemuInfoBitmaps(theirs), BitmapFiles.qemuInfoBitmaps(ours));
    }

    @Test
    void refusalsAndSkippedBitmaps() throws Exception {
        sameConvert("--skip-broken-bitmaps", "-O", "qcow2", source.toString(), "TARGET");
        sameConvert("--bitmaps", "-O", "raw", source.toString(), "TARGET");
        sameConvert("--bitmaps", "-O", "qcow2", "-o", "compat=0.10", source.toString(), "TARGET");
        Path raw = dir.resolve("r.raw");
        Qemu.img("create", "-q", "-f", "raw", raw.toString(), "1M");
        sameConvert("--bitmaps", "-f", "raw", "-O", "qcow2", raw.toString(), "TARGET");
        BitmapFiles.markAllInUse(source);
        sameConvert("--bitmaps", "-O", "qcow2", source.toString(), "TARGET");
        List<Path> targets = sameConvert("--bitmaps", "--skip-broken-bitmaps", "-O", "qcow2", source.toString(),
                "TARGET");
        assertEquals(BitmapFiles.qemuInfoBitmaps(targets.get(0)), BitmapFiles.qemuInfoBitmaps(targets.get(1)));
        assertFalse(Qemu.img("info", targets.get(1).toString()).contains("bitmaps"));
    }
}
