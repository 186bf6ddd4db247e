package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command line as a Java 21 runtime runs it: the jar's base layer alone, in its own process, with the classes
 * of the Java 22+ layer (io_uring, OFD locks, event loops, vhost-user, SEEK_HOLE) off the class path. Every feature
 * of that layer must fall back, saying so once in the log, or refuse with a typed message; nothing may fail on a
 * class it cannot load. (No Java 21 runtime is installed here; on one, the messages name the Java version instead
 * of the missing layer, {@code Java22Method}.)
 */
class BaseLayerTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    @Test
    void oDirectWritesFallBackToFileChannelAndTheVirtualThreadSchedulerSayingSoOnce() throws Exception {
        Path image = dir.resolve("a.qcow2");
        Result create = run("create", "-q", "-f", "qcow2", image.toString(), "64M");
        assertEquals(0, create.exit(), create.text());
        Result bench = run("bench", "-w", "-t", "none", "-c", "2000", "-d", "16", "--pattern", "90",
                image.toString());
        assertEquals(0, bench.exit(), bench.text());
        assertEquals(1, count(bench.text(), "io_uring is not available, using FileChannel instead"), bench.text());
        assertEquals(1, count(bench.text(), "event loops are not available"), bench.text());
        assertTrue(bench.text().contains("these figures are filechannel's"), bench.text());
        assertNoStackTrace(bench);

        assertTrue(Qemu.img("check", image.toString()).contains("No errors were found"));
        String read = Qemu.io(image, "read -P 0x5a 0 8000k");
        assertFalse(read.contains("Pattern verification failed"), read);
    }

    @Test
    void nbdServesOnTheBaseLayer() throws Exception {
        Path image = dir.resolve("n.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "16M");
        Path socket = dir.resolve("s.sock");
        Path log = dir.resolve("serve.log");
        Process server = start(List.of("serve", "-t", "--discard=unmap", "--socket", socket.toString(),
                image.toString()), log);
        try {
            String uri = "nbd+unix:///?socket=" + socket;
            for (int i = 0; i < 100 && !Files.exists(socket); i++) {
                Thread.sleep(100);
            }
            String io = Qemu.run(List.of("qemu-io", "-f", "raw", "-c", "write -P 0x21 1M 2M", "-c",
                    "discard 2M 1M", "-c", "read -P 0x21 1M 1M", "-c", "read -P 0 2M 1M", uri));
            assertFalse(io.contains("Pattern verification failed"), io);
        } finally {
            server.destroy(); // SIGTERM: flushes and closes the image clean
            assertTrue(server.waitFor(30, TimeUnit.SECONDS));
        }
        String said = Files.readString(log);
        assertEquals(128 + 15, server.exitValue(), said); // the JVM's status after SIGTERM's shutdown hooks
        assertTrue(said.contains("(virtual)"), said);
        assertNoStackTrace(new Result(server.exitValue(), said));
        assertTrue(Qemu.img("check", image.toString()).contains("No errors were found"));
        String read = Qemu.io(image, "read -P 0x21 1M 1M");
        assertFalse(read.contains("Pattern verification failed"), read);
    }

    @Test
    void vhostUserRefusesNamingWhatIsMissing() throws Exception {
        Path image = dir.resolve("v.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", image.toString(), "16M");
        Result serve = run("serve", "--vhost-user-blk", dir.resolve("v.sock").toString(), image.toString());
        assertEquals(1, serve.exit(), serve.text());
        assertTrue(serve.text().contains("qcow2-loom: Unsupported feature: the Java 22+ layer is missing"),
                serve.text());
        assertNoStackTrace(serve);
    }

    /** Without SEEK_HOLE a raw file maps as data throughout, as the README says, rather than failing. */
    @Test
    void aRawFileMapsAsDataThroughout() throws Exception {
        Path raw = dir.resolve("h.raw");
        Qemu.img("create", "-q", "-f", "raw", raw.toString(), "8M");
        Result map = run("map", "--output=json", raw.toString());
        assertEquals(0, map.exit(), map.text());
        assertTrue(map.text().contains("\"start\": 0, \"length\": 8388608"), map.text());
        assertNoStackTrace(map);
    }

    /**
     * Locks are POSIX ones there, which refuse a second open of a file with lock bytes in one process: commit and
     * rebase open each file of the chain with lock bytes once.
     */
    @Test
    void commitAndRebaseOnPosixLocks() throws Exception {
        Path base = dir.resolve("cb.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "4M");
        Qemu.io(base, "write -P 1 0 1M");
        Path other = dir.resolve("co.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", other.toString(), "4M");
        Path top = dir.resolve("ct.qcow2");
        Qemu.imgIn(dir, "create", "-q", "-f", "qcow2", "-b", "cb.qcow2", "-F", "qcow2", top.toString());
        Qemu.io(top, "write -P 2 512k 64k");
        Result commit = run("commit", top.toString());
        assertEquals(0, commit.exit(), commit.text());
        assertNoStackTrace(commit);
        Qemu.io(base, "read -P 1 0 512k", "read -P 2 512k 64k");
        Result rebase = run("rebase", "-b", "co.qcow2", "-F", "qcow2", top.toString());
        assertEquals(0, rebase.exit(), rebase.text());
        Qemu.io(top, "read -P 1 0 512k", "read -P 2 512k 64k", "read -P 0 1M 3M");
    }

    private record Result(int exit, String text) {
    }

    private Result run(String... args) throws IOException, InterruptedException {
        Path out = dir.resolve("out.txt");
        Process p = start(List.of(args), out);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), String.join(" ", args) + " did not end");
        return new Result(p.exitValue(), Files.readString(out));
    }

    /**
     * Our CLI in a new JVM whose class path holds no class of the Java 22+ layer, its stdout and stderr into
     * {@code out}.
     */
    private Process start(List<String> args, Path out) throws IOException {
        String classPath = Arrays.stream(System.getProperty("java.class.path").split(File.pathSeparator))
                .filter(e -> !e.contains("versions" + File.separator + "22") && !e.endsWith("test-classes"))
                .collect(Collectors.joining(File.pathSeparator));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> command = new ArrayList<>(List.of(java, "-cp", classPath, Main.class.getName()));
        command.addAll(args);
        return new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(out.toFile()).start();
    }

    private static void assertNoStackTrace(Result r) {
        assertFalse(r.text().contains("\tat "), r.text());
        assertFalse(r.text().contains("ClassNotFoundError") || r.text().contains("NoClassDefFoundError"), r.text());
    }

    private static int count(String text, String what) {
        Matcher m = Pattern.compile(Pattern.quote(what)).matcher(text);
        int n = 0;
        while (m.find()) {
            n++;
        }
        return n;
    }
}
