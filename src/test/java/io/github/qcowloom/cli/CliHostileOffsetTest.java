package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A reftable entry with bit 63 set (one bit flip): every command that reads refcounts ends with a diagnosis that
 * names the field and its value, in one line, with qemu-img's exit code; never "negative position".
 */
class CliHostileOffsetTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** A qemu-img image with data whose first reftable entry has bit 63 set. */
    private Path hostile() throws IOException {
        Path image = dir.resolve("h.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "64M");
        Qemu.io(image, "write -P 0x5a 0 1M");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.seek(48);
            long reftable = f.readLong();
            f.seek(reftable);
            long entry = f.readLong();
            f.seek(reftable);
            f.writeLong(entry | Long.MIN_VALUE);
        }
        return image;
    }

    private Path copy(Path image, String name) throws IOException {
        return Files.copy(image, dir.resolve(name), StandardCopyOption.REPLACE_EXISTING);
    }

    private static void oneLineDiagnosis(Cli.Run r) {
        assertFalse(r.err().contains("negative position"), r.err());
        assertFalse(r.err().contains("Exception"), r.err());
        List<String> ours = r.err().lines().filter(l -> l.startsWith("qcow2-loom:")).toList();
        assertEquals(1, ours.size(), r.err());
        assertTrue(ours.get(0).contains("Refblock offset 0x8000000000"), ours.get(0));
        assertTrue(ours.get(0).contains("reftable index: 0x0"), ours.get(0));
    }

    @Test
    void checkCountsUnreadableRefcountsAsCheckErrorsLikeQemuImg() throws IOException {
        Path image = hostile();
        Cli.Run r = Cli.ours("check", copy(image, "ours.qcow2").toString());
        int qemu = Qemu.exec(List.of("qemu-img", "check", copy(image, "theirs.qcow2").toString())).exitCode();
        assertEquals(qemu, r.code(), r.out() + r.err());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("Can't get refcount for cluster 0: Refblock offset 0x8000000000"), r.err());
        assertFalse(r.err().contains("negative position"), r.err());
    }

    @Test
    void checkRepairAllRebuildsTheRefcountsLikeQemuImg() throws IOException {
        Path image = hostile();
        Path ours = copy(image, "ours.qcow2");
        Cli.Run r = Cli.ours("check", "-r", "all", ours.toString());
        int qemu = Qemu.exec(List.of("qemu-img", "check", "-r", "all", copy(image, "theirs.qcow2").toString()))
                .exitCode();
        assertEquals(qemu, r.code(), r.out() + r.err());
        assertEquals(0, Qemu.exec(List.of("qemu-img", "check", ours.toString())).exitCode());
    }

    @Test
    void snapshotCreateFailsWithTheDiagnosisAndMarksTheImageCorrupt() throws IOException {
        Path image = hostile();
        Cli.Run r = Cli.ours("snapshot", "-c", "s1", image.toString());
        assertEquals(1, r.code(), r.out() + r.err());
        oneLineDiagnosis(r);
        String info = Qemu.img("info", "--output=json", "-U", image.toString());
        assertTrue(info.contains("\"corrupt\": true"), info);
    }

    @Test
    void growingResizeNeedsNoRefcountAndSucceedsAsQemuImgDoes() throws IOException {
        Path image = hostile();
        Cli.Run r = Cli.ours("resize", copy(image, "ours.qcow2").toString(), "128M");
        int qemu = Qemu.exec(List.of("qemu-img", "resize", copy(image, "theirs.qcow2").toString(), "128M"))
                .exitCode();
        assertEquals(qemu, r.code(), r.out() + r.err());
        assertFalse(r.err().contains("negative position"), r.err());
    }
}
