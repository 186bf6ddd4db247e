package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real guest on our NBD export: QEMU attaches {@code serve --socket} as a virtio-blk disk, Linux formats it
 * ext4, writes, rewrites, deletes and trims files, syncs, passes {@code e2fsck -fn} and reads every file back.
 * After the server's clean stop, qemu-img check finds the image clean, QEMU's own reader (qemu-img convert,
 * then debugfs) finds the files the guest reported, the image file holds on the host little more than the file system
 * uses (the trimmed clusters were punched out), and a second boot over a fresh server finds the files too.
 */
class NbdGuestTest {
    @TempDir
    Path dir;

    @Test
    void ext4WrittenByALinuxGuestIsCleanAndReadsBackAfterAReboot() throws Exception {
        GuestVm.assumeAvailable();
        Qemu.assume();
        Path image = dir.resolve("guest.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "256M");
        Path socket = dir.resolve("nbd.sock");

        GuestResult first;
        try (ServeProcess serve = ServeProcess.start(image, socket)) {
            first = serve.boot(() -> GuestVm.boot(GuestDisk.nbdUnix(socket), Ext4Workload.formatWriteVerify(10)));
            serve.stop();
        }
        Map<String, String> written = Ext4Workload.checksums(first.values("file"));
        assertEquals(10, written.size(), "f1..f10 without f2, and big: " + written.keySet());
        assertEquals(List.of("clean"), first.values("fsck"), first.tail(40));
        assertEquals(List.of(Integer.toString(written.size())), first.values("verified"));

        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(0, check.exitCode(), "qemu-img check after the guest: " + check.stdout() + check.stderr());
        assertTrue(check.stdout().contains("No errors were found"), check.stdout());
        assertEquals(written, HostExt4.checksums(image, "/data", dir), "files as QEMU's qcow2 reader sees them");
        // The 24 MiB file the guest deleted and trimmed left the image file: its clusters were punched out.
        long used = Long.parseLong(first.values("used").getFirst()) * 1024;
        System.out.printf("guest over NBD: the file system uses %d KiB, the image %d KiB on the host%n", used >> 10,
                Images.hostBytes(image) >> 10);
        assertTrue(Images.hostBytes(image) < used + (12 << 20), "the image holds " + Images.hostBytes(image)
                + " bytes on the host, the file system uses " + used);

        GuestResult second;
        try (ServeProcess serve = ServeProcess.start(image, socket)) {
            second = serve.boot(() -> GuestVm.boot(GuestDisk.nbdUnix(socket), Ext4Workload.checkAndList(false)));
            serve.stop();
        }
        assertEquals(List.of("clean"), second.values("fsck"), second.tail(40));
        assertEquals(written, Ext4Workload.checksums(second.values("file")), "files read by the second boot");
        System.out.printf("guest over NBD: first boot %d ms, second boot %d ms%n", first.elapsed().toMillis(),
                second.elapsed().toMillis());
    }
}
