package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * serve as an operator runs qemu-nbd in the background, each case beside qemu-nbd: {@code --fork} returns once the
 * server listens, or exits 1 with the server's refusal; {@code --pid-file} holds the server's id, locked; without
 * {@code -t} the server ends once a client that reached transmission leaves none behind (a listing does not
 * count), removing its socket.
 */
class CliServeDaemonTest extends QemuFolderTest {
    /** The command line that starts our server (ours) or qemu-nbd on {@code socket}, then {@code args}. */
    private static List<String> server(boolean ours, Path socket, String... args) {
        if (ours) {
            return NbdProcess.ourServe(socket, args);
        }
        List<String> command = new ArrayList<>(List.of("qemu-nbd", "-k", socket.toString()));
        command.addAll(List.of(args));
        return command;
    }

    private Path image(String name) {
        Path img = dir.resolve(name);
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "4M");
        return img;
    }

    @Test
    void withoutPersistentTheServerEndsWhenItsLastClientLeaves() throws Exception {
        NbdProcess.assumeNbdinfo();
        for (boolean ours : List.of(true, false)) {
            Path img = image(ours ? "ours.qcow2" : "theirs.qcow2");
            Path socket = dir.resolve(ours ? "o.sock" : "q.sock");
            Path pid = dir.resolve(ours ? "o.pid" : "q.pid");
            Qemu.run(server(ours, socket, "--fork", "--pid-file", pid.toString(), "-f", "qcow2", img.toString()));
            ProcessHandle server = ProcessHandle.of(Long.parseLong(Files.readString(pid).trim())).orElseThrow();
            String uri = "nbd+unix:///?socket=" + socket;
            Qemu.run(List.of("nbdinfo", "--list", uri));
            Thread.sleep(500);
            assertFalse(NbdProcess.ended(server), "a listing ended the server (ours: " + ours + ")");
            Qemu.run(List.of("qemu-io", "-f", "raw", "-c", "write -P 0x42 0 64k", uri));
            assertTrue(NbdProcess.awaitExit(server, 30), "the server stayed (ours: " + ours + ")");
            assertFalse(Files.exists(socket), "socket left (ours: " + ours + ")");
            Qemu.io(img, "read -P 0x42 0 64k");
            assertTrue(Qemu.img("check", img.toString()).contains("No errors were found"));
        }
    }

    /** qemu-nbd's refusals and exit codes for what --fork and --pid-file meet, with the server's run. */
    @Test
    void refusalsAreQemuNbds() throws Exception {
        Path img = image("a.qcow2");
        for (List<String> args : List.of(List.of("--fork", "-f", "qcow2", path("missing.qcow2")),
                List.of("--fork", "--pid-file", path("none/p"), "-f", "qcow2", img.toString()),
                List.of("--pid-file", path("none/p"), "-f", "qcow2", img.toString()))) {
            String[] given = args.toArray(String[]::new);
            Qemu.Result theirs = Qemu.exec(server(false, dir.resolve("q.sock"), given));
            Qemu.Result mine = Qemu.exec(server(true, dir.resolve("o.sock"), given));
            assertEquals(1, theirs.exitCode(), args + theirs.stderr());
            assertEquals(1, mine.exitCode(), args + mine.stderr());
            assertEquals(theirs.stderr().replace("qemu-nbd: ", "qcow2-loom: "), mine.stderr(), args.toString());
            assertFalse(Files.exists(dir.resolve("o.sock")), args.toString());
        }
        // A pid file another server holds locked: qemu-nbd's and ours.
        try (NbdProcess theirs = NbdProcess.qemu(dir, "-f", "qcow2", image("c.qcow2").toString());
                NbdProcess ours = NbdProcess.ours(dir, "--pid-file", path("ours.pid"), "-f", "qcow2",
                        image("d.qcow2").toString())) {
            for (String pidFile : List.of("qemu-nbd.pid", "ours.pid")) {
                String[] given = {"--fork", "--pid-file", path(pidFile), "-f", "qcow2", img.toString()};
                Qemu.Result q = Qemu.exec(server(false, dir.resolve("q2.sock"), given));
                Qemu.Result o = Qemu.exec(server(true, dir.resolve("o2.sock"), given));
                assertEquals(1, q.exitCode(), q.stderr());
                assertEquals(1, o.exitCode(), o.stderr());
                assertEquals(q.stderr().replace("qemu-nbd: ", "qcow2-loom: "), o.stderr(), pidFile);
                assertEquals("qcow2-loom: Cannot lock pid file: Resource temporarily unavailable\n", o.stderr());
            }
            assertTrue(!NbdProcess.ended(ours.handle()) && !NbdProcess.ended(theirs.handle()));
        }
    }

    @Test
    void persistentIsNbds() {
        Cli.Run r = Cli.ours("serve", "-t", "--vhost-user-blk", path("v.sock"), path("a.qcow2"));
        assertEquals(1, r.code());
        assertTrue(r.err().contains("--persistent: a vhost-user-blk back end serves until stopped"), r.err());
    }
}
