package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.testing.Qemu;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * An NBD server in a process of its own on a Unix socket, qemu-nbd or ours, for the tests that compare the two:
 * each started as an operator starts qemu-nbd, with {@code --fork} (the command returns once the server listens),
 * {@code --pid-file} and {@code -t} (it stays for the next client); stopped on close (SIGTERM).
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
        return start(List.of("qemu-nbd", "-k"), dir.resolve("theirs.sock"), dir.resolve("qemu-nbd.pid"), args);
    }

    /**
     * Our {@code serve ARGS} on {@code dir/ours.sock}, its pid file in {@code dir}, in a JVM run with the flags the
     * jar's manifest gives.
     */
    static NbdProcess ours(Path dir, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "--enable-native-access=ALL-UNNAMED", "--add-opens=java.base/java.lang=ALL-UNNAMED",
                "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "serve", "--socket"));
        return start(command, dir.resolve("ours.sock"), dir.resolve("ours.pid"), args);
    }

    /**
     * {@code server SOCKET --fork --pid-file PID -t ARGS}, once it returns; its temporary files (qemu-nbd's -s) in
     * {@code tmp} beside the socket.
     */
    private static NbdProcess start(List<String> server, Path socket, Path pid, String... args) throws Exception {
        List<String> command = new ArrayList<>(server);
        command.addAll(List.of(socket.toString(), "--fork", "--pid-file", pid.toString(), "-t"));
        command.addAll(List.of(args));
        Path tmp = Files.createDirectories(socket.resolveSibling("tmp"));
        Path out = Files.createTempFile(tmp, "out", ".txt");
        Path err = Files.createTempFile(tmp, "err", ".txt");
        ProcessBuilder builder = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        builder.environment().put("TMPDIR", tmp.toString());
        Process p = builder.start();
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            p.destroyForcibly();
            fail(command + " did not start: " + Files.readString(err));
        }
        String banner = Files.readString(out);
        Files.delete(out);
        Files.delete(err);
        return new NbdProcess(ProcessHandle.of(Long.parseLong(Files.readString(pid).trim())).orElseThrow(), socket,
                banner);
    }

    String banner() {
        return banner;
    }

    long pid() {
        return process.pid();
    }

    /** Whether the server still runs. */
    boolean isAlive() {
        return process.isAlive();
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
        try {
            process.onExit().get(30, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            process.destroyForcibly();
            throw e;
        }
    }
}
