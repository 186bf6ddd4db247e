package io.github.qcowloom.testing;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Where Jazzer reads a fuzz target's inputs: {@code <package>/<Class>Inputs/<method>} in the test class path. */
public final class FuzzInputs {
    private FuzzInputs() {
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
