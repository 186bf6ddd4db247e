package io.github.qcowloom.testing;

import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.storage.FileStorage;
import java.io.IOException;
import java.nio.file.Path;

/**
 * Whether io_uring runs here (Java 22+, a kernel and a seccomp filter that let it): the storage's fallocate (holes,
 * ZERO_RANGE) goes through it, so tests of what those leave on the host assume it.
 */
public final class IoUringHere {
    private IoUringHere() {
    }

    /** True if a storage asked for io_uring on {@code file}, an existing file, gets it. */
    public static boolean runs(Path file) throws IOException {
        try (FileStorage s = FileStorage.open(file, true, false, StorageBackend.IO_URING)) {
            return s.backend() == StorageBackend.IO_URING;
        }
    }
}
