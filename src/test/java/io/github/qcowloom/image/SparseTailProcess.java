package io.github.qcowloom.image;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Map;

/**
 * Runs in a JVM with a small heap: checks the image at IMAGE (read-only), opens it read-write (repairing it when
 * dirty), reads the pattern written at 0 back, closes it and checks it again. Prints one line per step:
 * {@code check KEY=VALUE ...} with the JSON fields qemu-img check prints, {@code opened}, or {@code refused
 * CLASS: MESSAGE} when a step fails with a typed error.
 */
final class SparseTailProcess {
    private SparseTailProcess() {
    }

    public static void main(String[] args) throws Exception {
        Path image = Path.of(args[0]);
        check(image);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            ByteBuffer b = ByteBuffer.allocate(4096);
            img.read(0, b);
            for (int i = 0; i < b.capacity(); i++) {
                if (b.get(i) != 0x5a) {
                    throw new AssertionError("byte " + i + " reads " + b.get(i));
                }
            }
            System.out.println("opened");
        } catch (io.github.qcowloom.api.ImageException e) {
            System.out.println("refused " + e.getClass().getSimpleName() + ": " + e.getMessage());
        }
        check(image);
    }

    private static void check(Path image) throws Exception {
        try {
            CheckResult r = ImageChecker.check(image, image.getFileName().toString());
            StringBuilder line = new StringBuilder("check");
            for (Map.Entry<String, Object> e : r.fields().entrySet()) {
                if (!e.getKey().equals("filename")) {
                    line.append(' ').append(e.getKey()).append('=').append(e.getValue());
                }
            }
            System.out.println(line);
        } catch (io.github.qcowloom.api.ImageException e) {
            System.out.println("refused " + e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }
}
