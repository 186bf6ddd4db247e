package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The guest-side throughput of our vhost-user-blk export against the reference, {@code qemu-storage-daemon
 * --export type=vhost-user-blk}, over the same kind of image (a fresh 1 GiB qcow2 each, page cache on both
 * sides): in the guest, {@code dd oflag=direct} writes 512 MiB in 1 MiB requests, then {@code dd iflag=direct}
 * reads them back, timed by the guest's /proc/uptime. Prints both rates and our/reference ratios; fails only if a
 * run fails. Long: runs with {@code -Pguest-long}.
 */
class VhostUserGuestSpeedTest {
    private static final int MIB = 512;
    private static final String WORKLOAD = """
            wait_for_device /dev/vda
            t0=$(cut -d' ' -f1 /proc/uptime)
            dd if=/dev/zero of=/dev/vda bs=1048576 count=%d oflag=direct 2>/dev/null
            t1=$(cut -d' ' -f1 /proc/uptime)
            dd if=/dev/vda of=/dev/null bs=1048576 count=%d iflag=direct 2>/dev/null
            t2=$(cut -d' ' -f1 /proc/uptime)
            mark times "$t0 $t1 $t2"
            """.formatted(MIB, MIB);

    @TempDir
    Path dir;

    /** Seconds of the write and of the read, as the guest measured them. */
    private static double[] times(GuestResult r) {
        List<String> v = r.values("times");
        assertEquals(1, v.size(), r.tail(40));
        String[] t = v.get(0).trim().split("\\s+");
        double t0 = Double.parseDouble(t[0]);
        double t1 = Double.parseDouble(t[1]);
        double t2 = Double.parseDouble(t[2]);
        return new double[] {t1 - t0, t2 - t1};
    }

    @Test
    void guestThroughputAgainstQemuStorageDaemon() throws Exception {
        assumeTrue(Boolean.getBoolean("guest.long"), "a long guest test: run with -Pguest-long");
        GuestVm.assumeAvailable();
        Qemu.assume();
        Path daemon = Path.of("/usr/bin/qemu-storage-daemon");
        assumeTrue(Files.isExecutable(daemon), "qemu-storage-daemon not installed");
        int queues = 2;
        GuestVm.Options options = GuestVm.Options.defaults().withCpus(queues);

        Path ours = dir.resolve("ours.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", ours.toString(), "1G");
        Path socket = dir.resolve("ours.sock");
        double[] our;
        try (ServeProcess serve = ServeProcess.startVhostUserBlk(ours, socket, "--num-queues",
                Integer.toString(queues))) {
            our = times(serve.boot(() -> GuestVm.boot(options, WORKLOAD,
                    GuestDisk.vhostUserBlk("vhost0", socket, queues))));
            serve.stop();
        }

        Path ref = dir.resolve("ref.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", ref.toString(), "1G");
        Path refSocket = dir.resolve("ref.sock");
        Path log = dir.resolve("qsd.log");
        Process qsd = new ProcessBuilder(daemon.toString(),
                "--blockdev", "driver=file,filename=" + ref + ",node-name=file,cache.direct=off",
                "--blockdev", "driver=qcow2,file=file,node-name=disk",
                "--export", "type=vhost-user-blk,id=e,node-name=disk,addr.type=unix,addr.path=" + refSocket
                        + ",writable=on,num-queues=" + queues)
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        double[] theirs;
        try {
            for (int i = 0; i < 200 && !Files.exists(refSocket); i++) {
                Thread.sleep(50);
            }
            assertTrue(Files.exists(refSocket), "qemu-storage-daemon did not listen: " + Files.readString(log));
            theirs = times(GuestVm.boot(options, WORKLOAD, GuestDisk.vhostUserBlk("vhost0", refSocket, queues))
                    .requireSuccess());
        } finally {
            qsd.destroy();
            qsd.waitFor(30, TimeUnit.SECONDS);
        }
        System.out.printf("guest dd, %d MiB in 1 MiB direct requests, %d queues: write %.1f MiB/s ours vs %.1f MiB/s"
                + " qemu-storage-daemon (ratio %.2f); read %.1f vs %.1f MiB/s (ratio %.2f)%n", MIB, queues,
                MIB / our[0], MIB / theirs[0], theirs[0] / our[0], MIB / our[1], MIB / theirs[1], theirs[1] / our[1]);
        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", ours.toString()));
        assertEquals(0, check.exitCode(), check.stdout() + check.stderr());
    }
}
