package io.github.qcowloom.testing;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Encrypted qcow2 images (LUKS, or the AES before it) through the real qemu-img and qemu-io, the passphrase given
 * as a secret object.
 */
public final class EncryptedImages {
    /** The passphrase the tests use; a short PBKDF time keeps each open fast. */
    public static final String PASSPHRASE = "correct horse";
    public static final byte[] KEY = PASSPHRASE.getBytes(StandardCharsets.UTF_8);
    /** The secret object qemu-img, qemu-io and qemu-nbd take ({@code --object}) for {@link #imageOpts}. */
    public static final String SECRET = "secret,id=sec0,data=" + PASSPHRASE;
    /** The images qemu-img made, by size and options ({@link #template}). */
    private static final Map<String, Path> TEMPLATES = new HashMap<>();

    private EncryptedImages() {
    }

    /**
     * qemu-img create of a LUKS-encrypted qcow2 image; {@code options} are added to -o (may be empty); retried as
     * {@link Qemu#execTimingPbkdf2}.
     */
    public static void create(Path image, long size, String options) {
        create("luks", image, size, options);
    }

    /** {@link #create(Path, long, String)} in {@code format}: "luks", or "aes". */
    public static void create(String format, Path image, long size, String options) {
        try {
            Files.copy(template(format, size, options), image, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * One image qemu-img made for each format, size and options, copied for every test that asks: qemu-img times
     * PBKDF2 for over a second twice per LUKS create, whatever the iteration time asked. The copies share a master
     * key.
     */
    private static synchronized Path template(String format, long size, String options) throws IOException {
        String key = format + "|" + size + "|" + options;
        Path made = TEMPLATES.get(key);
        if (made != null) {
            return made;
        }
        Path dir = Files.createTempDirectory("luks-templates");
        dir.toFile().deleteOnExit();
        made = dir.resolve("t.qcow2");
        made.toFile().deleteOnExit();
        String encryption = "encrypt.format=" + format + ",encrypt.key-secret=sec0"
                + (format.equals("luks") ? ",encrypt.iter-time=50" : "");
        List<String> cmd = List.of("qemu-img", "create", "-q", "-f", "qcow2", "--object", SECRET, "-o",
                encryption + (options.isEmpty() ? "" : "," + options), made.toString(), Long.toString(size));
        Qemu.Result r = Qemu.execTimingPbkdf2(cmd, null);
        if (r.exitCode() != 0) {
            fail(cmd + " exited " + r.exitCode() + ": " + r.stderr());
        }
        TEMPLATES.put(key, made);
        return made;
    }

    /** The --image-opts string qemu-img and qemu-io take for {@code image} with the test's secret. */
    public static String imageOpts(Path image) {
        return "driver=qcow2,encrypt.key-secret=sec0,file.filename=" + image;
    }

    /** Runs qemu-io on {@code image} with each string as one -c command; fails on a failed command or pattern. */
    public static String io(Path image, String... commands) {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "--object", SECRET, "--image-opts"));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(imageOpts(image));
        String out = Qemu.run(cmd);
        if (out.contains("failed") || out.contains("Pattern verification failed")) {
            fail("qemu-io " + List.of(commands) + " on " + image + ": " + out);
        }
        return out;
    }

    /** The guest contents of {@code image} as qemu-img convert -O raw decrypts them. */
    public static byte[] toRaw(Path image, Path scratchDir) throws IOException {
        Path raw = Files.createTempFile(scratchDir, "decrypted", ".raw");
        Qemu.img("convert", "--object", SECRET, "--image-opts", imageOpts(image), "-O", "raw", raw.toString());
        byte[] data = Files.readAllBytes(raw);
        Files.delete(raw);
        return data;
    }

    /** qemu-img check of {@code image} with the secret; its exit code and output. */
    public static Qemu.Result check(Path image) {
        return Qemu.exec(List.of("qemu-img", "check", "--object", SECRET, "--image-opts", imageOpts(image)));
    }
}
