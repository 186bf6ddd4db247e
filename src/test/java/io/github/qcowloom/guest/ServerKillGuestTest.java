package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.cli.Main;
import io.github.qcowloom.testing.Qemu;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The server killed with SIGKILL under a real guest, on each export: Linux writes and syncs files on ext4 through
 * {@code serve}, with background writeback in flight; after some files are reported synced the server process is
 * killed. qemu-img check then finds leaks at most, never corruption; our {@code check -r all} repairs; qemu-img
 * check is clean; and a new boot over a fresh server replays the journal, passes {@code e2fsck -fn} and finds every
 * file the guest had synced with its checksum.
 *
 * <p>A long test (a boot to the kill and one to check, per round): it runs with {@code -Pguest-long}, which sets
 * {@code -Dguest.long=true}; {@code -Dguest.killAfter=2,5,9} says after how many synced files each round kills the
 * server (default 3).
 */
class ServerKillGuestTest {
    /** How the guest reaches the server: NBD over a Unix socket, or vhost-user-blk with two queues on two vCPUs. */
    enum Export {
        NBD(1) {
            @Override
            ServeProcess start(Path image, Path socket) throws Exception {
                return ServeProcess.start(image, socket);
            }

            @Override
            GuestDisk disk(Path socket) {
                return GuestDisk.nbdUnix(socket);
            }
        },
        VHOST_USER_BLK(2) {
            @Override
            ServeProcess start(Path image, Path socket) throws Exception {
                return ServeProcess.startVhostUserBlk(image, socket, "--num-queues", Integer.toString(cpus));
            }

            @Override
            GuestDisk disk(Path socket) {
                return GuestDisk.vhostUserBlk("vhost0", socket, cpus);
            }
        };

        final int cpus;

        Export(int cpus) {
            this.cpus = cpus;
        }

        abstract ServeProcess start(Path image, Path socket) throws Exception;

        abstract GuestDisk disk(Path socket);
    }

    @TempDir
    Path dir;

    /** Each export at each kill point of {@code -Dguest.killAfter}. */
    static Stream<Arguments> rounds() {
        List<Integer> killPoints = Arrays.stream(System.getProperty("guest.killAfter", "3").split(","))
                .map(String::trim).map(Integer::valueOf).toList();
        return Arrays.stream(Export.values()).flatMap(e -> killPoints.stream().map(k -> Arguments.of(e, k)));
    }

    @ParameterizedTest(name = "{0}: server killed after {1} synced files")
    @MethodSource("rounds")
    void everythingTheGuestSyncedSurvivesTheServersKill(Export export, int syncedBeforeKill) throws Exception {
        assumeTrue(Boolean.getBoolean("guest.long"), "a long guest test: run with -Pguest-long");
        GuestVm.assumeAvailable();
        Qemu.assume();
        Path image = dir.resolve("guest.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "256M");
        Path socket = dir.resolve("export.sock");
        GuestVm.Options options = GuestVm.Options.defaults().withCpus(export.cpus);

        List<String> synced;
        try (ServeProcess serve = export.start(image, socket);
                GuestVm vm = GuestVm.start(options, Ext4Workload.writeUntilKilled(), export.disk(socket))) {
            synced = serve.explainingFailure(() -> vm.awaitMarks("synced", syncedBeforeKill, options.timeout()));
            serve.kill();
            // The guest now sees I/O errors; what it does with them no longer matters.
            vm.kill();
        }
        Map<String, String> durable = Ext4Workload.checksums(synced);
        String before = Qemu.exec(List.of("qemu-img", "check", "--output=json", image.toString())).stdout();
        assertFalse(before.contains("\"corruptions\""), "a killed server must leave no corruption: " + before);

        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int repaired = Main.run(new PrintWriter(out), new PrintWriter(err), "check", "-r", "all", image.toString());
        assertEquals(0, repaired, "check -r all: " + out + err);
        Qemu.Result check = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(0, check.exitCode(), "qemu-img check after our repair: " + check.stdout() + check.stderr());
        assertTrue(check.stdout().contains("No errors were found"), check.stdout());

        GuestResult after;
        try (ServeProcess serve = export.start(image, socket)) {
            after = serve.boot(() -> GuestVm.boot(options, Ext4Workload.checkAndList(true), export.disk(socket)));
            serve.stop();
        }
        assertEquals(List.of("clean"), after.values("fsck"), "e2fsck -fn after journal replay\n" + after.tail(40));
        Map<String, String> found = Ext4Workload.checksums(after.values("file"));
        durable.forEach((name, sum) -> assertEquals(sum, found.get(name),
                name + " was synced before the kill; after it the guest finds " + found));
        Qemu.Result last = Qemu.exec(List.of("qemu-img", "check", image.toString()));
        assertEquals(0, last.exitCode(), "qemu-img check after the checking boot: " + last.stdout());
        Matcher leaks = Pattern.compile("\"leaks\": (\\d+)").matcher(before);
        System.out.printf("%s: kill after %d synced files: %s leaked clusters before repair, %d files after (%s),"
                + " check boot %d ms%n", export, synced.size(), leaks.find() ? leaks.group(1) : "no", found.size(),
                found.keySet(), after.elapsed().toMillis());
    }
}
