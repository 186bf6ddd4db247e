package io.github.qcowloom.testing;

import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.storage.FileStorage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Whether the storage can fallocate(ZERO_RANGE) in a folder: it needs io_uring (Java 22+, a kernel and a seccomp
 * filter that let it) and a file system that has the call (tmpfs has not). Tests of what raw zero writes leave on
 * the host assume it.
 */
public final class ZeroRangeHere {
    private ZeroRangeHere() {
    }

    /** True if a file in {@code dir} takes a ZERO_RANGE through the storage. */
    public static boolean works(Path dir) throws IOException {
        Path probe = Files.createTempFile(dir, "zero-range", ".probe");
        try {
            Files.write(probe, new byte[65536]);
            try (FileStorage s = FileStorage.open(probe, false, false, StorageBackend.AUTO)) {
                return s.zeroRange(0, 65536, false);
            }
        } finally {
            Files.delete(probe);
        }
    }
}
