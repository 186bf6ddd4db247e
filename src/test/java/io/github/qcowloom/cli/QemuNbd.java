package io.github.qcowloom.cli;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A qemu-nbd serving on a Unix socket, beside ours, for the tests that compare the two: started with {@code --fork}
 * (it returns once qemu-nbd listens) and {@code -t} (it stays for the next client), stopped on close.
 */
final class QemuNbd implements AutoCloseable {
    private final ProcessHandle process;
    /** The socket it listens on. */
    final Path socket;

    private QemuNbd(ProcessHandle process, Path socket) {
        this.process = process;
        this.socket = socket;
    }

    /** qemu-nbd {@code ARGS} on {@code dir/theirs.sock}, its pid file in {@code dir}. */
    static QemuNbd start(Path dir, String... args) throws Exception {
        Path socket = dir.resolve("theirs.sock");
        Path pid = dir.resolve("qemu-nbd.pid");
        List<String> command = new ArrayList<>(List.of("qemu-nbd", "--fork", "--pid-file", pid.toString(), "-t",
                "-k", socket.toString()));
        command.addAll(List.of(args));
        Qemu.run(command);
        return new QemuNbd(ProcessHandle.of(Long.parseLong(Files.readString(pid).trim())).orElseThrow(), socket);
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
