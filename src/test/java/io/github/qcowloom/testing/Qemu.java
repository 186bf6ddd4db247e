package io.github.qcowloom.testing;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/**
 * Runs the real qemu-img and qemu-io for interop tests. Where they are absent the tests are skipped with a
 * visible reason, unless {@code -Dqcowloom.requireQemu=true} (set by .ci/run) makes that a failure.
 */
public final class Qemu {
    private Qemu() {
    }

    public static boolean available() {
        return Files.isExecutable(Path.of("/usr/bin/qemu-img")) && Files.isExecutable(Path.of("/usr/bin/qemu-io"));
    }

    /** Skips the calling test when qemu-img is missing, or fails it when CI requires qemu. */
    public static void assume() {
        if (!available() && Boolean.getBoolean("qcowloom.requireQemu")) {
            fail("qemu-img/qemu-io are required (qcowloom.requireQemu) but not installed");
        }
        Assumptions.assumeTrue(available(), "qemu-img/qemu-io not installed (apt-get install qemu-utils)");
    }

    /** Skips when a client tool is absent (fails instead under -Dqcowloom.requireQemu=true, as CI sets). */
    public static void assumeTool(String tool, String pkg) {
        assume();
        boolean present = Files.isExecutable(Path.of("/usr/bin", tool));
        if (!present && Boolean.getBoolean("qcowloom.requireQemu")) {
            fail(tool + " is required but not installed (apt-get install " + pkg + ")");
        }
        Assumptions.assumeTrue(present, tool + " not installed (apt-get install " + pkg + ")");
    }

    /** Result of one process run. */
    public record Result(int exitCode, String stdout, String stderr) {
    }

    /** Runs a command with a 120 s limit and returns its result whatever the exit code. */
    public static Result exec(List<String> command) {
        return exec(command, null);
    }

    /**
     * {@link #exec(List, Path)} of a qemu-img command that makes a LUKS volume (create, convert, measure), run again
     * while it fails for want of a clock: qemu-img 7.2 times PBKDF2 by its thread's CPU time, which this kernel
     * counts in ticks, and gives up on a first timing of 0 ms ("Unable to get accurate CPU usage"), whatever the
     * iteration time asked. Returns the last run's result, up to 50 runs.
     */
    public static Result execTimingPbkdf2(List<String> command, Path workDir) {
        Result r = exec(command, workDir);
        for (int run = 1; run < 50 && r.stderr().contains("Unable to get accurate CPU usage"); run++) {
            r = exec(command, workDir);
        }
        return r;
    }

    /** Runs a command in {@code workDir} (null: the current directory) with a 120 s limit. */
    public static Result exec(List<String> command, Path workDir) {
        try {
            Path out = Files.createTempFile("qemu-out", ".txt");
            Path err = Files.createTempFile("qemu-err", ".txt");
            try {
                ProcessBuilder pb = new ProcessBuilder(command);
                if (workDir != null) {
                    pb.directory(workDir.toFile());
                }
                Process p = pb.redirectOutput(out.toFile()).redirectError(err.toFile())
                        .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
                if (!p.waitFor(120, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    fail("timed out: " + command);
                }
                return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                        Files.readString(err, StandardCharsets.UTF_8));
            } finally {
                Files.deleteIfExists(out);
                Files.deleteIfExists(err);
            }
        } catch (IOException e) {
            throw new AssertionError("cannot run " + command, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted running " + command, e);
        }
    }

    /** Runs a command and fails the test unless it exits 0; returns stdout. */
    public static String run(List<String> command) {
        return run(command, null);
    }

    /** Runs a command in {@code workDir} and fails the test unless it exits 0; returns stdout. */
    public static String run(List<String> command, Path workDir) {
        Result r = exec(command, workDir);
        if (r.exitCode() != 0) {
            fail(command + " exited " + r.exitCode() + "\nstdout: " + r.stdout() + "\nstderr: " + r.stderr());
        }
        return r.stdout();
    }

    public static String img(String... args) {
        return imgIn(null, args);
    }

    /**
     * The entries of {@code qemu-img map --output=json}'s output {@code mapJson} as the guest sees them, one
     * "start+length flags" each: host offsets left out and neighbours with the same flags merged (qemu-img splits a
     * run whose clusters are not contiguous in the file: an L2 table between them, or the order in which concurrent
     * requests allocated them).
     */
    public static List<String> guestMap(String mapJson) {
        List<String> merged = new ArrayList<>();
        String previous = null;
        long start = 0;
        long end = 0;
        for (String line : mapJson.split("\n")) {
            if (!line.contains("\"start\"")) {
                continue;
            }
            String flags = line.replaceAll(".*\"depth\"", "\"depth\"").replaceAll(", \"offset\": \\d+", "")
                    .replaceAll("[}\\],]+$", "");
            long s = Long.parseLong(line.replaceAll(".*\"start\": (\\d+).*", "$1"));
            long n = Long.parseLong(line.replaceAll(".*\"length\": (\\d+).*", "$1"));
            if (flags.equals(previous) && s == end) {
                end = s + n;
                continue;
            }
            if (previous != null) {
                merged.add(start + "+" + (end - start) + " " + previous);
            }
            previous = flags;
            start = s;
            end = s + n;
        }
        if (previous != null) {
            merged.add(start + "+" + (end - start) + " " + previous);
        }
        return merged;
    }

    /** Runs qemu-img in {@code workDir}: it creates relative data-file names there, not beside the image. */
    public static String imgIn(Path workDir, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add("qemu-img");
        cmd.addAll(List.of(args));
        return run(cmd, workDir);
    }

    /** Runs qemu-io on a qcow2 image with each string as one -c command. */
    public static String io(Path image, String... commands) {
        return ioFormat("qcow2", image, commands);
    }

    public static String ioFormat(String format, Path image, String... commands) {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", format));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(image.toString());
        // QEMU 7.2 resolves a relative data-file name against the working directory, not the image's folder.
        String out = run(cmd, image.toAbsolutePath().getParent());
        if (out.contains("failed") || out.contains("Pattern verification failed")) {
            fail("qemu-io " + List.of(commands) + " on " + image + ": " + out);
        }
        return out;
    }

    /** The guest contents of {@code image} as qemu-img convert -O raw gives them. */
    public static byte[] toRaw(Path image, Path scratchDir) throws IOException {
        Path raw = Files.createTempFile(scratchDir, "expected", ".raw");
        imgIn(image.toAbsolutePath().getParent(), "convert", "-O", "raw", image.toString(), raw.toString());
        byte[] data = Files.readAllBytes(raw);
        Files.delete(raw);
        return data;
    }

    /** The "image-end-offset" of {@code qemu-img check --output=json}'s output. */
    public static long imageEndOffset(String checkJson) {
        return Long.parseLong(checkJson.replaceAll("(?s).*\"image-end-offset\": (\\d+).*", "$1"));
    }
}
