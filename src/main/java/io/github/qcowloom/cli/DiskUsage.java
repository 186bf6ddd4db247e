package io.github.qcowloom.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;

/**
 * Bytes a file occupies on the host (st_blocks × 512), qemu-img's "disk size". Java has no st_blocks, so this
 * asks coreutils' stat; where that fails the field is left out rather than guessed.
 */
final class DiskUsage {
    private DiskUsage() {
    }

    static OptionalLong of(Path file) {
        try {
            Process p = new ProcessBuilder("stat", "-c", "%b %B", file.toString()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0) {
                return OptionalLong.empty();
            }
            String[] parts = out.split("\\s+");
            return OptionalLong.of(Long.parseLong(parts[0]) * Long.parseLong(parts[1]));
        } catch (IOException | NumberFormatException | ArrayIndexOutOfBoundsException e) {
            return OptionalLong.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return OptionalLong.empty();
        }
    }
}
