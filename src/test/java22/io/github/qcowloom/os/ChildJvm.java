package io.github.qcowloom.os;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * A scenario run in a fresh JVM with the flags the jar's manifest gives: for what a test JVM cannot undo (loops
 * live as long as the process; the JDK's pollers start once).
 */
final class ChildJvm {
    private ChildJvm() {
    }

    /** Runs {@code scenario}'s main; requires it to exit 0 within 30 s, and returns its last line (its verdict). */
    static String verdict(Class<?> scenario) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process child = new ProcessBuilder(java, "--add-opens", "java.base/java.lang=ALL-UNNAMED", "--add-opens",
                "java.base/sun.nio.ch=ALL-UNNAMED", "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                scenario.getName()).redirectErrorStream(true).start();
        String out = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(child.waitFor(30, TimeUnit.SECONDS), out);
        assertEquals(0, child.exitValue(), out);
        String[] lines = out.strip().split("\n");
        return lines[lines.length - 1]; // after any warnings it logged
    }
}
