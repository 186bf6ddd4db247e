package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The vhost-user-blk server killed with SIGKILL under a real guest (as NbdGuestKillTest does for NBD): Linux
 * writes and syncs files on ext4 through {@code serve --vhost-user-blk} (2 queues), with background writeback in
 * flight; after some files are reported synced the server process
 * is killed. Our {@code check -r all} then repairs the image (the killed server leaves it dirty, with leaks at
 * most, never corruption), qemu-img check finds it clean, and a new boot over a fresh server replays the
 * journal, passes {@code e2fsck -fn} and finds every file the guest had synced with its checksum.
 *
 * <p>A long test (a boot to the kill and one to check, per round): it runs with {@code -Pguest-long}, which
 * sets {@code -Dguest.long=true}; {@code -Dguest.killAfter=2,5,9} says after how many synced files each round
 * kills the server.
 */
class VhostUserGuestKillTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "server killed after {0} synced files")
    @MethodSource("io.github.qcowloom.guest.AfterServerKill#killPoints")
    void everythingTheGuestSyncedSurvivesTheServersKill(int syncedBeforeKill) throws Exception {
        assumeTrue(Boolean.getBoolean("guest.long"), "a long guest test: run with -Pguest-long");
        GuestVm.assumeAvailable();
        Qemu.assume();
        Path image = dir.resolve("guest.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "256M");
        Path socket = dir.resolve("vhost.sock");

        List<String> synced;
        try (ServeProcess serve = ServeProcess.startVhostUserBlk(image, socket, "--num-queues", "2");
                GuestVm vm = GuestVm.start(GuestVm.Options.defaults().withCpus(2), Ext4Workload.writeUntilKilled(),
                        GuestDisk.vhostUserBlk("vhost0", socket, 2))) {
            synced = vm.awaitMarks("synced", syncedBeforeKill, GuestVm.Options.defaults().timeout());
            serve.kill();
            // The guest now sees I/O errors; what it does with them no longer matters.
            vm.kill();
        }
        AfterServerKill.repairAndVerify(image, synced, () -> ServeProcess.startVhostUserBlk(image, socket), GuestDisk.vhostUserBlk("vhost0", socket, 1), "vhost-user-blk");
    }
}
