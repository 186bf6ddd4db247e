package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.HeaderField;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An image that is its own backing file, with a legal, sparse active L1 table of 4 Mi entries (QEMU's 32 MiB
 * limit): when the loop was followed to the depth limit, each of its 64 levels held that L1 (and a 32 MiB array
 * while reading it), so one 33 MiB sparse file (196 KiB on disk) ran a 512 MiB heap out of memory. The loop is now
 * found where the chain names the file again, in a JVM of that heap.
 */
class BackingLoopMemoryTest {
    @TempDir
    Path dir;

    /** Run in a child JVM: opens the image read-only and prints how that ended. */
    public static final class Child {
        public static void main(String[] args) throws Exception {
            try {
                Qcow2Image.open(Path.of(args[0]), OpenOptions.readOnlyDefaults()).close();
                System.out.println("opened");
            } catch (ImageException e) {
                System.out.println("refused " + e.getClass().getSimpleName() + ": " + e.getMessage());
            }
        }
    }

    @Test
    void aSelfBackedImageWithALargeL1IsRefusedWithinAModestHeap() throws Exception {
        Path image = dir.resolve("self.qcow2");
        ImagePoker.create(image, CreateOptions.defaults(64L << 20).withBacking("self.qcow2", "qcow2"));
        long l1Offset = 1L << 20;
        int l1Entries = 4 << 20;
        ImagePoker.putInt(image, HeaderField.L1_SIZE.offset(), l1Entries);
        ImagePoker.putLong(image, HeaderField.L1_TABLE_OFFSET.offset(), l1Offset);
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(l1Offset + l1Entries * 8L); // sparse: the L1 reads as zeroes
        }
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process child = new ProcessBuilder(java, "-Xmx512m", "-XX:+ExitOnOutOfMemoryError",
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Child.class.getName(), image.toString()).redirectErrorStream(true).start();
        String out = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(child.waitFor(120, TimeUnit.SECONDS));
        assertTrue(out.contains("refused UnsupportedFeatureException: Could not open '") && out.contains(
                "self.qcow2': Could not open backing file: Backing file 'self.qcow2' creates an infinite loop"),
                "exit " + child.exitValue() + ": " + out);
    }
}
