package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Our command line as its own process under LANG=C, beside qemu-img: qemu-img prints a snapshot's name as its
 * bytes whatever the locale, and so must we (the locale's US-ASCII printed "caf?").
 */
class CliLocaleTest {
    @TempDir
    Path dir;

    @Test
    void aUtf8SnapshotNamePrintsAsQemuImgPrintsItUnderLangC() throws Exception {
        Qemu.assume();
        String img = dir.resolve("a.qcow2").toString();
        Qemu.img("create", "-q", "-f", "qcow2", img, "1M");
        Qemu.img("snapshot", "-c", "café", img);
        byte[] theirs = run(List.of("qemu-img", "snapshot", "-l", img));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        byte[] ours = run(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), Main.class.getName(), "snapshot", "-l", img));
        assertArrayEquals(theirs, ours, () -> new String(ours, StandardCharsets.UTF_8));
    }

    /** Standard output of {@code command} run under the C locale, which must succeed. */
    private byte[] run(List<String> command) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(new ArrayList<>(command)).redirectError(ProcessBuilder.Redirect.INHERIT);
        pb.environment().keySet().removeIf(k -> k.startsWith("LC_"));
        pb.environment().put("LANG", "C");
        Process p = pb.start();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), command.get(0) + " did not end");
        assertEquals(0, p.exitValue(), command.get(0));
        return out;
    }
}
