package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launcher (src/main/bin/qcow2-loom) passes an AOT cache only when it is not older than the jar (why: see the
 * launcher). The JDK here is a script that prints the arguments it gets.
 */
class LauncherCacheTest {
    @TempDir
    Path dir;

    private String launch(Instant jarTime, Instant cacheTime) throws IOException, InterruptedException {
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Path launcher = bin.resolve("qcow2-loom");
        Files.copy(Path.of("src/main/bin/qcow2-loom"), launcher, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Path jdk = Files.createDirectories(dir.resolve("jdk/bin"));
        Files.writeString(dir.resolve("jdk/release"), "JAVA_VERSION=\"25.0.1\"\n");
        Path java = jdk.resolve("java");
        Files.writeString(java, "#!/bin/sh\necho \"$@\"\n");
        Files.setPosixFilePermissions(java, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.setPosixFilePermissions(launcher, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.writeString(dir.resolve("qcow2-loom.aot.jdk"), dir.resolve("jdk").toString() + "\n");
        Path jar = Files.write(dir.resolve("qcow2-loom.jar"), new byte[] {1});
        Path cache = Files.write(dir.resolve("qcow2-loom.aot"), new byte[] {2});
        Files.setLastModifiedTime(jar, FileTime.from(jarTime));
        Files.setLastModifiedTime(cache, FileTime.from(cacheTime));
        ProcessBuilder builder = new ProcessBuilder("sh", launcher.toString(), "bench", "x.qcow2");
        builder.environment().remove("QCOW2_LOOM_JAVA_HOME"); // it would come before the JDK that made the cache
        Process p = builder.redirectErrorStream(true).start();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "the launcher did not finish");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        return out;
    }

    @Test
    void aCacheMadeAfterTheJarIsUsed() throws Exception {
        Instant now = Instant.now();
        assertTrue(launch(now.minusSeconds(60), now).contains("-XX:AOTCache="));
    }

    @Test
    void aCacheOlderThanTheJarIsLeftOut() throws Exception {
        Instant now = Instant.now();
        String args = launch(now, now.minusSeconds(60));
        assertFalse(args.contains("-XX:AOTCache="), args);
        assertTrue(args.contains("bench x.qcow2"), args);
    }
}
