package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.testing.Qemu;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's embedding example, taken from README.md as it stands: compiled by the JDK's javac against the
 * project's classes and run in a JVM of its own on a qcow2 image made by qemu-img. It must print the disk's size in sectors.
 */
class VirtioEmbeddingExampleTest {
    private static final Pattern BLOCK = Pattern.compile(
            "<!-- embedding example: VirtioEmbeddingExampleTest compiles and runs this block -->\\s*```java\\n(.*?)```",
            Pattern.DOTALL);

    @TempDir
    Path dir;

    @Test
    void theReadmeExampleCompilesAndRuns() throws Exception {
        Qemu.assume();
        String readme = Files.readString(Path.of("README.md"));
        Matcher m = BLOCK.matcher(readme);
        assertTrue(m.find(), "README.md has no embedding example block");
        Path source = dir.resolve("src/Hypervisor.java");
        Files.createDirectories(source.getParent());
        Files.writeString(source, m.group(1));
        Path classes = Files.createDirectories(dir.resolve("classes"));
        // The JDK running this test compiles and runs the example, in processes of their own, as a user would.
        Path bin = Path.of(ProcessHandle.current().info().command().orElseThrow()).getParent();
        String classPath = System.getProperty("java.class.path");
        Qemu.run(List.of(bin.resolve("javac").toString(), "-proc:none", "-classpath", classPath, "-d",
                classes.toString(), source.toString()));

        Path image = dir.resolve("disk.qcow2");
        Qemu.run(List.of("qemu-img", "create", "-q", "-f", "qcow2", image.toString(), "64M"));
        String out = Qemu.run(List.of(bin.resolve("java").toString(), "--enable-native-access=ALL-UNNAMED",
                "-classpath", classes + java.io.File.pathSeparator + classPath, "Hypervisor", image.toString()));
        assertEquals("virtio-blk disk of " + (64 << 20) / 512 + " sectors", out.trim());
        Qemu.run(List.of("qemu-img", "check", image.toString()));
    }
}
