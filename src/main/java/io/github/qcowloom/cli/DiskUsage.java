package io.github.qcowloom.cli;

import io.github.qcowloom.storage.AllocatedBytes;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.OptionalLong;
import java.util.concurrent.TimeUnit;

/**
 * Bytes a file occupies on the host (st_blocks × 512), qemu-img's "disk size"; a symbolic link is followed, as
 * qemu-img's fstat of the open image does. Java has no st_blocks: the jar's Java 22+ layer asks statx(2); on Java 21
 * this asks coreutils' stat, a process (milliseconds of an info's start-up). Where both fail the field is left out
 * rather than guessed.
 */
final class DiskUsage {
    private DiskUsage() {
    }

    /**
     * Makes one statx call, of the root directory (see {@link Main#linkNativeCallsAhead}), so that info's own call
     * finds its class loaded and its path run; nothing without the Java 22+ layer.
     */
    static void link() {
        AllocatedBytes.of(Path.of("/"));
    }

    static OptionalLong of(Path file) {
        OptionalLong statx = AllocatedBytes.of(file);
        return statx.isPresent() ? statx : ofStatProcess(file);
    }
    static OptionalLong ofStatProcess(Path file) {
        try {
            Process p = new ProcessBuilder("stat", "-L", "-c", "%b %B", "--", file.toString())
                    .redirectErrorStream(true).start();
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
