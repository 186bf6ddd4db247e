package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The harness's vhost-user attachment ({@link GuestDisk#vhostUserBlk}: RAM in a shared memfd, the chardev and
 * the vhost-user-blk-pci device) against the reference back end, {@code qemu-storage-daemon --export
 * type=vhost-user-blk}, with 4 queues and 4 vCPUs: the ext4 workload passes there, so a failure on our own
 * vhost-user export is ours, not the harness's. Long: runs with {@code -Pguest-long}.
 */
class ReferenceVhostUserGuestTest {
    @TempDir
    Path dir;

    @Test
    void ext4OnQemuStorageDaemonsVhostUserBlkExport() throws Exception {
        assumeTrue(Boolean.getBoolean("guest.long"), "a long guest test: run with -Pguest-long");
        GuestVm.assumeAvailable();
        Qemu.assume();
        Path daemon = Path.of("/usr/bin/qemu-storage-daemon");
        assumeTrue(Files.isExecutable(daemon), "qemu-storage-daemon not installed (apt-get install qemu-utils)");
        Path image = dir.resolve("ref.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "256M");
        Path socket = dir.resolve("vhost.sock");
        Path log = dir.resolve("qsd.log");
        Process qsd = new ProcessBuilder(daemon.toString(),
                "--blockdev", "driver=file,filename=" + image + ",node-name=file,cache.direct=off",
                "--blockdev", "driver=qcow2,file=file,node-name=disk",
                "--export", "type=vhost-user-blk,id=e,node-name=disk,addr.type=unix,addr.path=" + socket
                        + ",writable=on,num-queues=4")
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        GuestResult r;
        try {
            awaitSocket(socket, qsd, log);
            // Linux gives a virtio-blk disk at most one queue per vCPU: 4 vCPUs for 4 queues.
            String workload = "wait_for_device /dev/vda\nmark queues $(ls /sys/block/vda/mq | wc -l)\n"
                    + Ext4Workload.formatWriteVerify(4);
            r = GuestVm.boot(GuestVm.Options.defaults().withCpus(4), workload,
                    GuestDisk.vhostUserBlk("vhost0", socket, 4)).requireSuccess();
        } finally {
            qsd.destroy();
            assertTrue(qsd.waitFor(30, TimeUnit.SECONDS), "qemu-storage-daemon did not stop");
        }
        Map<String, String> written = Ext4Workload.checksums(r.values("file"));
        assertEquals(List.of("4"), r.values("queues"), "request queues of /dev/vda in the guest");
        assertEquals(List.of("clean"), r.values("fsck"), r.tail(40));
        assertEquals(written, HostExt4.checksums(image, "/data", dir));
        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(0, check.exitCode(), check.stdout() + check.stderr());
        System.out.printf("guest over qemu-storage-daemon vhost-user-blk (4 queues): %d ms%n",
                r.elapsed().toMillis());
    }

    private static void awaitSocket(Path socket, Process qsd, Path log) throws IOException, InterruptedException {
        for (int i = 0; i < 200 && !Files.exists(socket); i++) {
            assertTrue(qsd.isAlive(), () -> "qemu-storage-daemon exited: " + read(log));
            Thread.sleep(50);
        }
        assertTrue(Files.exists(socket), () -> "qemu-storage-daemon did not listen: " + read(log));
    }

    private static String read(Path log) {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return e.toString();
        }
    }
}
