package io.github.qcowloom.compress;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;

/** Finds and runs the host programs that interop tests drive (python3, qemu-img). */
final class HostTools {
    private HostTools() {}

    /** The executable named {@code program} on PATH; skips the calling test with a reason when there is none. */
    static Path require(String program, String purpose) {
        for (String entry : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path candidate = Path.of(entry, program);
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        Assumptions.abort(program + " is not on PATH: cannot " + purpose);
        throw new AssertionError("unreachable");
    }

    /** Runs a command to completion and returns its standard output; fails the test on a non-zero exit. */
    static String run(String... command) throws IOException, InterruptedException {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), String.join(" ", command) + " timed out");
        assertEquals(0, process.exitValue(), String.join(" ", command) + " failed:\n" + output);
        return output;
    }
}
