package io.github.qcowloom.cli;

import io.github.qcowloom.api.UnsupportedFeatureException;
import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * serve's {@code --fork}, as qemu-nbd's: the server goes on in the background and the command returns once it
 * serves. A JVM cannot fork, so the command line runs again in a new JVM (the same java, JVM flags and arguments,
 * as the kernel holds them for this process), marked by an environment variable so that it serves rather than
 * forks. As qemu-nbd's daemon, it reads /dev/null and keeps this process's stderr (a refusal shows there and
 * makes this process exit 1; qemu-nbd's daemon too keeps its caller's stderr once it serves); its stdout is a pipe
 * to this process, which copies what it prints and returns 0 at the serving line, or 1 if the server ended
 * without one.
 */
final class ServerFork {
    private static final String CHILD = "QCOW2_LOOM_FORKED_SERVER";

    private ServerFork() {
    }

    /** Whether this process is the server a {@code --fork} started. */
    static boolean inChild() {
        return "1".equals(System.getenv(CHILD));
    }

    /**
     * Starts the server's JVM and waits until it serves or ends; prints its output to {@code out}.
     *
     * @param serving how the server's line saying it serves begins
     * @return the command's exit code: 0 if the server serves, 1 if it ended
     */
    static int start(PrintWriter out, String serving) throws IOException, InterruptedException {
        if (!Main.ownsProcess()) {
            throw new UnsupportedFeatureException("serve --fork", "--fork needs the command line's own JVM (not a"
                    + " command run inside another program)");
        }
        ProcessHandle.Info self = ProcessHandle.current().info();
        if (self.command().isEmpty() || self.arguments().isEmpty()) {
            throw new UnsupportedFeatureException("serve --fork", "--fork: this JVM's command line cannot be read");
        }
        List<String> command = new ArrayList<>();
        command.add(self.command().get());
        command.addAll(List.of(self.arguments().get()));
        ProcessBuilder builder = new ProcessBuilder(command)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectError(ProcessBuilder.Redirect.INHERIT);
        builder.environment().put(CHILD, "1");
        Process server = builder.start();
        BufferedReader lines = server.inputReader(StandardCharsets.UTF_8);
        for (String line = lines.readLine(); line != null; line = lines.readLine()) {
            out.println(line);
            if (line.startsWith(serving)) {
                // Returning closes the pipe's other end: the server's later output goes nowhere (EPIPE, which the
                // JVM ignores), and its stdout descriptor stays taken, so no socket of its gets number 1.
                out.flush();
                return 0;
            }
        }
        out.flush();
        server.waitFor();
        return 1;
    }
}
