package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.nbd.Export;
import io.github.qcowloom.nbd.NbdServer;
import io.github.qcowloom.testing.BitmapFiles;
import io.github.qcowloom.testing.Qemu;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * serve -B against qemu-nbd -B: nbdinfo maps the qemu:dirty-bitmap context of each bitmap the same from both
 * servers, read-only and writable (where the guest's writes show in the bitmap at once), and a bitmap missing or in
 * use is refused in qemu-nbd's words.
 */
class CliServeBitmapTest {
    @TempDir
    Path dir;
    private Path image;

    @BeforeEach
    void image() {
        Qemu.assume();
        image = BitmapFiles.qemuImageWithBitmaps(dir.resolve("b.qcow2"), String.valueOf((64 << 20) + 3072), "64k");
    }

    /** nbdinfo's map of {@code bitmap}'s context from qemu-nbd serving {@code img} read-only. */
    private static String qemuNbdMap(Path img, String bitmap) {
        return Qemu.run(List.of("nbdinfo", "--map=qemu:dirty-bitmap:" + bitmap, "--", "[", "qemu-nbd", "-r", "-f",
                "qcow2", "-B", bitmap, img.toString(), "]"));
    }

    private static NbdServer serve(BlockDevice device, boolean readOnly, String bitmap, Path socket)
            throws Exception {
        return NbdServer.start(new Export(device, readOnly, ServedBitmap.of(device, bitmap)),
                UnixDomainSocketAddress.of(socket), ExecutionModel.VIRTUAL, NbdServer.Options.defaults());
    }

    @Test
    void readOnlyAsQemuNbd() throws Exception {
        for (String bitmap : List.of("b0", "fine", "coarse")) {
            Path socket = dir.resolve(bitmap + ".sock");
            try (BlockDevice device = ImageFormat.open(image, "qcow2", OpenOptions.readOnlyDefaults())) {
                NbdServer server = serve(device, true, bitmap, socket);
                try {
                    String ours = Qemu.run(List.of("nbdinfo", "--map=qemu:dirty-bitmap:" + bitmap, server.uri()));
                    assertEquals(qemuNbdMap(image, bitmap), ours, bitmap);
                    assertTrue(ours.contains("dirty"), ours);
                    // One extent a request, from unaligned offsets where the previous ended (qemu-img map).
                    assertEquals(BitmapFiles.qemuDirtyMap(image, bitmap), BitmapFiles.dirtyMapAt(socket, bitmap));
                } finally {
                    server.stop();
                }
            }
        }
    }

    /** A writable export: the bitmap is the live one; a write through NBD shows in it before the image closes. */
    @Test
    void writableShowsTheGuestsWritesAtOnce() throws Exception {
        Path theirs = dir.resolve("theirs.qcow2");
        Files.copy(image, theirs);
        Path socket = dir.resolve("ours.sock");
        try (NbdProcess qemuNbd = NbdProcess.qemu(dir, "-f", "qcow2", "-B", "fine", theirs.toString());
                BlockDevice device = ImageFormat.open(image, "qcow2", OpenOptions.readWriteDefaults())) {
            NbdServer server = serve(device, false, "fine", socket);
            try {
                String theirUri = qemuNbd.uri();
                for (String uri : List.of(theirUri, server.uri())) {
                    Qemu.run(List.of("qemu-io", "-f", "raw", "-c", "write 10M 4k", "-c", "write -z 20M 64k", uri));
                }
                String ours = Qemu.run(List.of("nbdinfo", "--map=qemu:dirty-bitmap:fine", server.uri()));
                assertEquals(Qemu.run(List.of("nbdinfo", "--map=qemu:dirty-bitmap:fine", theirUri)), ours);
                assertTrue(ours.contains("10485760"), ours);
            } finally {
                server.stop();
            }
        }
        assertEquals(BitmapFiles.qemuDirtyMap(theirs, "fine"), BitmapFiles.qemuDirtyMap(image, "fine"));
    }

    @Test
    void aBitmapMissingOrInUseIsRefusedAsQemuNbdRefusesIt() throws Exception {
        Path socket = dir.resolve("s.sock");
        for (int round = 0; round < 2; round++) {
            String bitmap = round == 0 ? "nope" : "b0";
            NbdProcess.refusedAlike(List.of("-r", "-f", "qcow2", "-k", socket.toString(), "-B", bitmap,
                    image.toString()), List.of("--read-only", "--socket", socket.toString(), "-B", bitmap,
                    image.toString()));
            BitmapFiles.markAllInUse(image);
        }
    }
}
