package io.github.qcowloom.compress;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;

/** Finds the host programs that interop tests drive (python3, qemu-img), so that they can skip without them. */
final class HostTools {
    private HostTools() {}

    /** The executable named {@code program} on PATH, or null. */
    static Path find(String program) {
        for (String entry : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path candidate = Path.of(entry, program);
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        return null;
    }
}
