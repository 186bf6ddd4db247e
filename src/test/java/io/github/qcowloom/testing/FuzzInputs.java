package io.github.qcowloom.testing;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.image.ImageCreator;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What fuzz targets share: where Jazzer reads a target's inputs ({@code <package>/<Class>Inputs/<method>} in the
 * test class path), and an empty image to run them against.
 */
public final class FuzzInputs {
    private FuzzInputs() {
    }

    /**
     * The file of a new, empty qcow2 image of {@code size} bytes with the default options: a fuzz target's disk, each
     * run opening a fresh copy of it in memory.
     */
    public static byte[] emptyQcow2(long size) throws IOException {
        Path tmp = Files.createTempFile("fuzz-disk", ".qcow2");
        try {
            Files.delete(tmp);
            ImageCreator.create(tmp, CreateOptions.defaults(size));
            return Files.readAllBytes(tmp);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** The inputs directory of {@code target}'s fuzz test {@code method}, made if missing. */
    public static Path directory(Class<?> target, String method) throws IOException {
        Path classes;
        try {
            classes = Path.of(target.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException("test classes at " + target.getProtectionDomain().getCodeSource(), e);
        }
        return Files.createDirectories(classes.resolve(target.getPackageName().replace('.', '/'))
                .resolve(target.getSimpleName() + "Inputs").resolve(method));
    }

    /** Writes {@code bytes} as the seed {@code name} of {@code target}'s fuzz test {@code method}. */
    public static void seed(Class<?> target, String method, String name, byte[] bytes) throws IOException {
        Files.write(directory(target, method).resolve("seed-" + name), bytes);
    }
}
