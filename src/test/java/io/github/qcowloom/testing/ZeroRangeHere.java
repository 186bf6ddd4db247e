package io.github.qcowloom.testing;

import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.storage.FileStorage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Whether the storage can fallocate(ZERO_RANGE) in a folder: it needs io_uring (Java 22+, a kernel and a seccomp
 * filter that let it) and a file system that has the call (tmpfs has not); and whether it aligns O_DIRECT requests
 * as QEMU does there. Tests of what raw zero writes leave on the host assume them.
 */
public final class ZeroRangeHere {
    private ZeroRangeHere() {
    }

    /**
     * True if an O_DIRECT file in {@code dir} is aligned by the storage as QEMU probes it: to a 512-byte sector where
     * an O_DIRECT read of one works (dd's), which takes io_uring and a kernel that tells its alignment (statx, Linux
     * 6.1 on); elsewhere any alignment counts.
     */
    public static boolean directAlignmentAsQemu(Path dir) throws IOException {
        Path probe = Files.createTempFile(dir, "direct", ".probe");
        try {
            Files.write(probe, new byte[65536]);
            boolean sectors = readsDirectSectors(probe);
            try (FileStorage s = FileStorage.open(probe, true, true, StorageBackend.AUTO)) {
                return !sectors || s.alignment() == 512;
            }
        } finally {
            Files.delete(probe);
        }
    }

    /**
     * True if an O_DIRECT read of one 512-byte sector of {@code file} (at least 1 KiB long) works: dd's own, as QEMU
     * probes its request alignment.
     */
    public static boolean readsDirectSectors(Path file) {
        return Qemu.exec(List.of("dd", "if=" + file, "of=/dev/null", "iflag=direct", "bs=512", "count=1", "skip=1"))
                .exitCode() == 0;
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
