package io.github.qcowloom.guest;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.cli.Main;
import io.github.qcowloom.testing.ServingLine;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

/**
 * Our command line's {@code serve --socket SOCKET -t --discard=unmap IMAGE} in a JVM of its own, as a user runs
 * it, so that a test can stop it as an operator does (SIGTERM: flush and close clean) or kill it with SIGKILL
 * mid-request. It serves guest after guest ({@code -t}) and passes their trims to the image.
 */
final class ServeProcess implements AutoCloseable {
    private final Process process;
    private final Path log;

    private ServeProcess(Process process, Path log) {
        this.process = process;
        this.log = log;
    }

    /** Starts serving {@code image} read-write on {@code socket} and waits until it listens. */
    static ServeProcess start(Path image, Path socket, String... extraArgs) throws IOException, InterruptedException {
        return launch(image, socket, "--socket", extraArgs);
    }

    /** The same as a vhost-user-blk back end: {@code serve --vhost-user-blk SOCKET}. */
    static ServeProcess startVhostUserBlk(Path image, Path socket, String... extraArgs)
            throws IOException, InterruptedException {
        return launch(image, socket, "--vhost-user-blk", extraArgs);
    }

    private static ServeProcess launch(Path image, Path socket, String listen, String... extraArgs)
            throws IOException, InterruptedException {
        Files.deleteIfExists(socket);
        Path log = Files.createTempFile(socket.getParent(), "serve", ".log");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        // The flags the jar's manifest gives (and so the launcher): the server runs as users run it, on a loop.
        List<String> cmd = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED",
                "--add-opens=java.base/java.lang=ALL-UNNAMED", "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), Main.class.getName(), "serve", listen, socket.toString(),
                "--discard=unmap")); // the guest's trims reach the image
        if (listen.equals("--socket")) {
            cmd.add("-t"); // a test boots a guest on it more than once
        }
        cmd.addAll(List.of(extraArgs));
        cmd.add(image.toString());
        Process p = new ProcessBuilder(cmd).redirectError(log.toFile()).start();
        ServeProcess s = new ServeProcess(p, log);
        String first;
        try {
            first = ServingLine.await(p, 60);
        } catch (Exception e) {
            s.kill();
            throw new AssertionError("serve did not start: " + s.log(), e);
        }
        if (first == null || !first.startsWith("serving ")) {
            s.kill();
            fail("serve did not start (" + first + "): " + s.log());
        }
        return s;
    }

    /** Stops it as an operator does (SIGTERM) and requires a clean exit with nothing on stderr. */
    void stop() throws InterruptedException {
        process.destroy();
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "serve did not stop within 60 s after SIGTERM");
        int code = process.exitValue();
        // A JVM ended by SIGTERM exits 143 once its shutdown hooks (here: stop, flush, close) have run.
        assertTrue(code == 0 || code == 143, "serve exited " + code + ": " + log());
        assertTrue(log().isBlank(), "serve wrote to stderr: " + log());
    }

    /** SIGKILL: the server dies wherever it is, with requests in flight. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        assertTrue(process.waitFor(30, TimeUnit.SECONDS), "serve survived SIGKILL");
    }

    /** A guest run against this server; a failure carries the server's stderr too (its warnings say why). */
    interface GuestRun {
        GuestResult run() throws Exception;
    }

    /** Runs {@code guest}, requires its workload to succeed, and explains a failure with the server's stderr. */
    GuestResult boot(GuestRun guest) throws Exception {
        try {
            return guest.run().requireSuccess();
        } catch (Exception | AssertionError e) {
            throw new AssertionError(e.getMessage() + "\n--- serve stderr ---\n" + log(), e);
        }
    }

    /**
     * Runs {@code step} (a wait on the guest, say); a failure carries the server's stderr and its threads, virtual
     * ones included, so that a server stalled on a request tells itself apart from a guest that never got going.
     */
    <T> T explainingFailure(Callable<T> step) throws Exception {
        try {
            return step.call();
        } catch (Exception | AssertionError e) {
            throw new AssertionError(e.getMessage() + "\n--- serve stderr ---\n" + log() + "\n--- serve threads ---\n"
                    + threads(), e);
        }
    }

    /** The server's threads as {@code jcmd Thread.dump_to_file} writes them (virtual threads too), or why not. */
    private String threads() throws InterruptedException {
        if (!process.isAlive()) {
            return "(serve has exited: " + process.exitValue() + ")";
        }
        Path dump = log.resolveSibling("threads-" + process.pid() + ".txt");
        String jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd").toString();
        try {
            Process p = new ProcessBuilder(jcmd, Long.toString(process.pid()), "Thread.dump_to_file", "-format=text",
                    dump.toString()).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return "(jcmd did not answer within 30 s)";
            }
            return Files.exists(dump) ? Files.readString(dump, StandardCharsets.UTF_8)
                    : "(jcmd exited " + p.exitValue() + " without a dump)";
        } catch (IOException e) {
            return "(jcmd failed: " + e + ")";
        }
    }

    String log() {
        try {
            return Files.readString(log, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(cannot read " + log + ": " + e + ")";
        }
    }

    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            kill();
        }
    }
}
