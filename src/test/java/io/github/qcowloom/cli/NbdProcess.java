package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.testing.Qemu;
import io.github.qcowloom.testing.ServingLine;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * An NBD server in a process of its own on a Unix socket, qemu-nbd or ours, for the tests that compare the two,
 * with {@code -t} (it stays for the next client) and its temporary files (qemu-nbd's -s) in {@code tmp} beside the
 * socket; stopped on close (SIGTERM). qemu-nbd is started as an operator starts it, with {@code --fork} and {@code
 * --pid-file}; ours in a JVM of its own whose serving line is awaited (one JVM started, not two: {@link
 * CliServeDaemonTest} runs its --fork and --pid-file against qemu-nbd's).
 */
final class NbdProcess implements AutoCloseable {
    private final ProcessHandle process;
    /** The socket it listens on. */
    final Path socket;
    /** What the command printed as it started the server (ours: the serving line; qemu-nbd: nothing). */
    private final String banner;

    private NbdProcess(ProcessHandle process, Path socket, String banner) {
        this.process = process;
        this.socket = socket;
        this.banner = banner;
    }

    /** qemu-nbd {@code ARGS} on {@code dir/theirs.sock}, its pid file in {@code dir}. */
    static NbdProcess qemu(Path dir, String... args) throws Exception {
        Path socket = dir.resolve("theirs.sock");
        Path pid = dir.resolve("qemu-nbd.pid");
        List<String> command = new ArrayList<>(List.of("qemu-nbd", "-k", socket.toString(), "--fork", "--pid-file",
                pid.toString(), "-t"));
        command.addAll(List.of(args));
        Path out = Files.createTempFile(tmp(socket), "out", ".txt");
        Process p = builder(command, socket).redirectErrorStream(true).redirectOutput(out.toFile()).start();
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            p.destroyForcibly();
            fail(command + " did not start: " + Files.readString(out));
        }
        Files.delete(out);
        return new NbdProcess(ProcessHandle.of(Long.parseLong(Files.readString(pid).trim())).orElseThrow(), socket,
                "");
    }

    /** Our {@code serve ARGS} on {@code dir/ours.sock}, in a JVM run with the flags the jar's manifest gives. */
    static NbdProcess ours(Path dir, String... args) throws Exception {
        Path socket = dir.resolve("ours.sock");
        List<String> command = ourServe(socket, "-t");
        command.addAll(List.of(args));
        Path err = Files.createTempFile(tmp(socket), "err", ".txt");
        Process p = builder(command, socket).redirectError(err.toFile()).start();
        String banner;
        try {
            banner = ServingLine.await(p, 120);
        } catch (Exception e) {
            p.destroyForcibly();
            throw new AssertionError(command + " did not start: " + Files.readString(err), e);
        }
        if (banner == null || !banner.startsWith("serving ")) {
            p.destroyForcibly();
            fail(command + " did not start (" + banner + "): " + Files.readString(err));
        }
        return new NbdProcess(p.toHandle(), socket, banner);
    }

    /**
     * Our {@code serve --socket SOCKET ARGS} as a command line: a JVM run with the flags the jar's manifest gives.
     */
    static List<String> ourServe(Path socket, String... args) {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "--enable-native-access=ALL-UNNAMED", "--add-opens=java.base/java.lang=ALL-UNNAMED",
                "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "serve", "--socket", socket.toString()));
        command.addAll(List.of(args));
        return command;
    }

    /**
     * qemu-nbd {@code qemuArgs} and our {@code serve ourArgs} (run in this JVM) both refuse to serve: exit 1, with
     * the same words.
     */
    static void refusedAlike(List<String> qemuArgs, List<String> ourArgs) {
        List<String> qemu = new ArrayList<>(List.of("qemu-nbd"));
        qemu.addAll(qemuArgs);
        Qemu.Result theirs = Qemu.exec(qemu);
        List<String> serve = new ArrayList<>(List.of("serve"));
        serve.addAll(ourArgs);
        Cli.Run mine = Cli.ours(serve.toArray(String[]::new));
        assertEquals(1, theirs.exitCode(), qemuArgs + ": " + theirs.stderr());
        assertEquals(1, mine.code(), ourArgs + ": " + mine.err());
        assertEquals(theirs.stderr().replace("qemu-nbd: ", "qcow2-loom: "), mine.err(), ourArgs.toString());
    }

    /** The folder beside {@code socket} that takes the server's temporary files and outputs. */
    private static Path tmp(Path socket) throws IOException {
        return Files.createDirectories(socket.resolveSibling("tmp"));
    }

    /** A server's process: stdin /dev/null, $TMPDIR the folder beside its socket. */
    private static ProcessBuilder builder(List<String> command, Path socket) throws IOException {
        ProcessBuilder builder = new ProcessBuilder(command)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        builder.environment().put("TMPDIR", tmp(socket).toString());
        return builder;
    }

    String banner() {
        return banner;
    }

    long pid() {
        return process.pid();
    }

    ProcessHandle handle() {
        return process;
    }

    /** Skips the test where nbdinfo (Debian's libnbd-bin) is missing; fails instead where CI requires it. */
    static void assumeNbdinfo() {
        Qemu.assumeTool("nbdinfo", "libnbd-bin");
    }

    /** The URI of its export of the empty name. */
    String uri() {
        return "nbd+unix:///?socket=" + socket;
    }

    @Override
    public void close() throws Exception {
        process.destroy();
        if (!awaitExit(process, 30)) {
            process.destroyForcibly();
            throw new TimeoutException("the server " + process.pid() + " did not end");
        }
    }

    /**
     * Waits up to {@code seconds} for {@code server} (started by another process, here a --fork) to end: gone, or
     * a zombie, which has closed everything and waits only for its reaper. (onExit waits for the reaping, which
     * this machine's init does every two seconds or so.)
     */
    static boolean awaitExit(ProcessHandle server, int seconds) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!ended(server)) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(10);
        }
        return true;
    }

    /** Whether {@code server} has ended: gone, or a zombie (isAlive says true of one until it is reaped). */
    static boolean ended(ProcessHandle server) throws IOException {
        try {
            String line = Files.readString(Path.of("/proc", Long.toString(server.pid()), "stat"));
            return line.charAt(line.lastIndexOf(')') + 2) == 'Z' || !server.isAlive();
        } catch (java.nio.file.NoSuchFileException e) {
            return true;
        }
    }
}
