package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * convert -l and measure -l against qemu-img's on an image of QEMU's with two internal snapshots, one taken before
 * the disk grew (its L1 table shorter than the active size needs) and one over a backing file's data: the same
 * bytes, sizes and errors for each way of naming a snapshot.
 */
class CliSnapshotLoadTest {
    @TempDir
    Path dir;
    private Path image;

    @BeforeEach
    void image() {
        Qemu.assume();
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "64M");
        Qemu.io(base, "write -P 0x55 3M 1M");
        image = dir.resolve("a.qcow2");
        // 4 KiB clusters: an L2 table maps 2 MiB, so the early snapshot's L1 table has 2 entries, the active one 128.
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", base.toString(), "-F", "qcow2",
                image.toString(), "4M");
        Qemu.io(image, "write -P 0x11 0 1M");
        Qemu.io(image, "write -P 0x12 2M 64k");
        Qemu.img("snapshot", "-c", "early", image.toString());
        Qemu.io(image, "write -P 0x22 512k 1M");
        Qemu.io(image, "write -z 2M 64k");
        Qemu.img("resize", "-q", image.toString(), "256M");
        Qemu.io(image, "write -P 0x33 200M 1M");
        Qemu.img("snapshot", "-c", "late", image.toString());
        Qemu.io(image, "write -P 0x44 0 4k");
        Qemu.io(image, "write -c -P 0x66 5M 64k");
    }

    /** The raw copy {@code tool} (ours or qemu-img) converts with {@code args}, under a name of its own. */
    private Path converted(String tool, String name, String... args) {
        Path out = dir.resolve(name + ".raw");
        List<String> cmd = new ArrayList<>(List.of("convert", "-O", "raw"));
        cmd.addAll(List.of(args));
        cmd.addAll(List.of(image.toString(), out.toString()));
        if (tool.equals("qemu-img")) {
            List<String> q = new ArrayList<>(List.of("qemu-img"));
            q.addAll(cmd);
            Qemu.Result r = Qemu.exec(q);
            assertEquals(0, r.exitCode(), r.stderr());
        } else {
            Cli.succeeding(cmd.toArray(String[]::new));
        }
        return out;
    }

    @Test
    void convertReadsTheSnapshotAsQemuImgDoes() throws Exception {
        Path active = converted("ours", "active");
        for (String sn : List.of("early", "1", "late", "2", "snapshot.id=1", "snapshot.name=late",
                "snapshot.id=2,snapshot.name=late")) {
            Path ours = converted("ours", "ours", "-l", sn);
            assertEquals(-1, Files.mismatch(converted("qemu-img", "theirs", "-l", sn), ours), sn);
            assertNotEquals(-1, Files.mismatch(active, ours), sn + " read as the active image");
            assertEquals(256L << 20, Files.size(ours), "the active image's size, as in qemu-img");
        }
        assertNotEquals(-1, Files.mismatch(converted("ours", "early", "-l", "early"),
                converted("ours", "late", "-l", "late")));
        // Into a qcow2 target too: qemu-img reads the copy back equal to the snapshot.
        Path target = dir.resolve("t.qcow2");
        Cli.succeeding("convert", "-l", "early", "-O", "qcow2", image.toString(), target.toString());
        Qemu.img("check", "-q", target.toString());
        Qemu.img("compare", "-q", dir.resolve("early.raw").toString(), target.toString());
    }

    @Test
    void measureMeasuresTheSnapshotAsQemuImgDoes() {
        String early = Cli.sameAsQemuImg("measure", "-O", "qcow2", "-l", "early", image);
        String late = Cli.sameAsQemuImg("measure", "-O", "qcow2", "--output=json", "-l", "snapshot.id=2", image);
        Cli.sameAsQemuImg("measure", "-O", "qcow2", "-l", "2", image);
        assertNotEquals(early, Cli.sameAsQemuImg("measure", "-O", "qcow2", image));
        assertTrue(late.contains("required"), late);
    }

    @Test
    void errorsAsQemuImgWordsThem() throws Exception {
        for (String sn : List.of("nosuch", "3", "snapshot.id=1,snapshot.name=late", "snapshot.name=1")) {
            Cli.sameAsQemuImg("convert", "-O", "raw", "-l", sn, image, dir.resolve("x.raw"));
            Cli.sameAsQemuImg("measure", "-O", "qcow2", "-l", sn, image);
        }
        assertFalse(Files.exists(dir.resolve("x.raw")), "no target made for a snapshot not found");
        Path raw = dir.resolve("r.raw");
        Files.write(raw, new byte[1 << 20]);
        Cli.sameAsQemuImg("convert", "-O", "raw", "-l", "early", raw, dir.resolve("x.raw"));
        Cli.sameAsQemuImg("measure", "-l", "early", raw);
        Cli.sameAsQemuImg("measure", "-l", "early", "--size", "1M");
        // qemu-img prints QemuOpts' complaint and its own on two lines, each with its name.
        Cli.Run bad = Cli.ours("convert", "-O", "raw", "-l", "snapshot.x=1", image.toString(),
                dir.resolve("x.raw").toString());
        assertEquals(1, bad.code());
        assertEquals("qcow2-loom: Invalid parameter 'snapshot.x'\nqcow2-loom: Failed in parsing snapshot param"
                + " 'snapshot.x=1'\n", bad.err());
    }

    /** QEMU asserts that only a read-only image loads a snapshot: a writable one would write into its tree. */
    @Test
    void aWritableImageRefusesToViewASnapshot() throws Exception {
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            assertThrows(IllegalStateException.class, () -> img.viewSnapshot(img.snapshots().get(0)));
        }
    }
}
