package io.github.qcowloom.cli;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.image.ImageCreator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * qemu-nbd's {@code -s}: the server writes to a temporary qcow2 image whose backing file is FILE, which stays as
 * it was. Made as QEMU 7.2's bdrv_append_temp_snapshot makes it: in {@code $TMPDIR}, else {@code /var/tmp}, named
 * {@code vl.XXXXXX}, of FILE's virtual size, with FILE's absolute name and format as its backing file; deleted when
 * the server has closed it (a killed server leaves it, as a killed qemu-nbd does).
 */
final class TemporaryOverlay {
    private TemporaryOverlay() {
    }

    /** Creates the overlay of {@code image} (in {@code format}, {@code size} bytes) and returns its path. */
    static Path create(Path image, String format, long size) throws IOException {
        String tmpdir = System.getenv("TMPDIR");
        Path overlay = Files.createTempFile(Path.of(tmpdir == null ? "/var/tmp" : tmpdir), "vl.", "");
        try {
            ImageCreator.create(overlay, CreateOptions.defaults(size).withBacking(image.toAbsolutePath().toString(),
                    format));
            return overlay;
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(overlay);
            throw e;
        }
    }
}
