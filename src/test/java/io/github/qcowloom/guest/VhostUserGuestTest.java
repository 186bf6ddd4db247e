package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.testing.Qemu;
import io.github.qcowloom.virtio.VirtioBlkConfig;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A real guest on our vhost-user-blk export: QEMU attaches {@code serve --vhost-user-blk} with RAM in a shared
 * memfd, Linux sees a virtio-blk disk with that many request queues (one vCPU per queue), formats it ext4,
 * writes, rewrites, deletes and trims files, syncs, passes {@code e2fsck -fn} and reads every file back. After
 * the server's clean stop (SIGTERM), qemu-img check finds the image clean and QEMU's own qcow2 reader finds the
 * files. One queue runs in the default suite (one boot); four run with {@code -Pguest-long}.
 */
class VhostUserGuestTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0} queues")
    @ValueSource(ints = {1, 4})
    void ext4WrittenByALinuxGuestThroughVhostUserIsClean(int queues) throws Exception {
        assumeTrue(queues == 1 || Boolean.getBoolean("guest.long"), "4 queues: run with -Pguest-long");
        GuestVm.assumeAvailable();
        Qemu.assume();
        Path image = dir.resolve("guest.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "256M");
        Path socket = dir.resolve("vhost.sock");
        GuestResult r;
        try (ServeProcess serve = ServeProcess.startVhostUserBlk(image, socket, "--num-queues",
                Integer.toString(queues))) {
            String workload = "wait_for_device /dev/vda\nmark queues $(ls /sys/block/vda/mq | wc -l)\n"
                    + Ext4Workload.DIRECT_WRITE_READ + Ext4Workload.formatWriteVerify(6);
            r = serve.boot(() -> GuestVm.boot(GuestVm.Options.defaults().withCpus(queues), workload,
                    GuestDisk.vhostUserBlk("vhost0", socket, queues)));
            serve.stop();
        }
        assertEquals(List.of("same"), r.values("direct"), "8 MiB written and read back with O_DIRECT");
        assertEquals(List.of(Integer.toString(VirtioBlkConfig.defaults().segMax())), r.values("segments"),
                "the guest's max_segments: seg_max, so requests of 128 buffers can come");
        Map<String, String> written = Ext4Workload.checksums(r.values("file"));
        assertEquals(List.of(Integer.toString(queues)), r.values("queues"), "request queues of /dev/vda");
        assertEquals(List.of("clean"), r.values("fsck"), r.tail(40));
        assertEquals(List.of(Integer.toString(written.size())), r.values("verified"));
        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(0, check.exitCode(), "qemu-img check after the guest: " + check.stdout() + check.stderr());
        assertTrue(check.stdout().contains("No errors were found"), check.stdout());
        assertEquals(written, HostExt4.checksums(image, "/data", dir), "files as QEMU's qcow2 reader sees them");
        System.out.printf("guest over our vhost-user-blk (%d queues): %d ms%n", queues, r.elapsed().toMillis());
    }
}
