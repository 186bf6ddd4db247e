package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.testing.Qemu;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A writer killed with SIGKILL while its cluster pool holds preallocated clusters leaves a dirty image with
 * leaks and no corruption; QEMU's read-write open repairs it, and so does ours.
 */
class KillTest {
    @TempDir
    Path dir;

    @Test
    void killedWriterLeavesOnlyLeaksThatBothRepairs() throws Exception {
        Qemu.assume();
        Path image = dir.resolve("k.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(256L << 20).withClusterSize(4096));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process child = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), KillTarget.class.getName(), image.toString()).redirectErrorStream(true).start();
        try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(),
                StandardCharsets.UTF_8))) {
            String line = out.readLine();
            assertEquals("ready", line, "child did not start writing");
        } finally {
            child.destroyForcibly(); // SIGKILL
            assertTrue(child.waitFor(30, TimeUnit.SECONDS));
        }

        String check = Qemu.exec(List.of("qemu-img", "check", "--output=json", image.toString())).stdout();
        assertFalse(check.contains("\"corruptions\""), "a killed writer must leave no corruption: " + check);
        assertTrue(check.contains("\"leaks\""), "the pool's clusters should show as leaks: " + check);
        String info = Qemu.img("info", "--output=json", "-U", image.toString());
        assertTrue(info.contains("\"dirty-flag\": true"), info);

        // QEMU's read-write open repairs the copy; ours repairs the original.
        Path copy = dir.resolve("copy.qcow2");
        Files.copy(image, copy);
        Qemu.io(copy, "read 0 512");
        assertFalse(Qemu.img("check", "--output=json", copy.toString()).contains("\"leaks\""));

        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            assertTrue(img.size() > 0);
        }
        String after = Qemu.img("check", "--output=json", image.toString());
        assertFalse(after.contains("\"leaks\""), after);
        assertFalse(after.contains("\"corruptions\""), after);
        assertTrue(Qemu.img("info", "--output=json", image.toString()).contains("\"dirty-flag\": false"));
    }
}
