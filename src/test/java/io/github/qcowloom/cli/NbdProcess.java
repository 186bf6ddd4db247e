package io.github.qcowloom.cli;

import io.github.qcowloom.testing.Qemu;
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

    private NbdProcess(ProcessHandle process, Path socket) {
        this.process = process;
        this.socket = socket;
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

    /** {@code server SOCKET --fork --pid-file PID -t ARGS}, once it returns. */
    private static NbdProcess start(List<String> server, Path socket, Path pid, String... args) throws Exception {
        List<String> command = new ArrayList<>(server);
        command.addAll(List.of(socket.toString(), "--fork", "--pid-file", pid.toString(), "-t"));
        command.addAll(List.of(args));
        Qemu.run(command);
        return new NbdProcess(ProcessHandle.of(Long.parseLong(Files.readString(pid).trim())).orElseThrow(), socket);
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
