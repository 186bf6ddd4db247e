package io.github.qcowloom.image;

import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;

/** What a preallocation mode does to the host space of data it places: one rule for create, resize and raw files. */
public final class HostSpace {
    private HostSpace() {
    }

    /**
     * Prepares {@code [position, position + length)} of {@code storage} for data placed by {@code mode}: written with
     * zeroes for {@code FULL}, and for any mode where the range is not {@code fresh} (it may hold old bytes); else
     * reserved ({@code FALLOC}: fallocate, or zeroes where the host cannot), or left sparse with the file grown to
     * cover it ({@code METADATA}, as QEMU's truncate leaves it). {@code OFF} places nothing and changes nothing.
     */
    static void prepare(Storage storage, Preallocation mode, long position, long length, boolean fresh)
            throws IOException {
        if (mode == Preallocation.OFF) {
            return;
        }
        if (mode == Preallocation.FULL || !fresh) {
            storage.writeZeroes(position, length);
        } else if (mode == Preallocation.FALLOC) {
            storage.reserve(position, length);
        } else {
            storage.extendTo(position + length);
        }
    }

    /**
     * QEMU's allocate_first_block, which file-posix's create makes of every new file: the first 4 KiB (at most the
     * file's length) written with zeroes, so that they are allocated on the host whatever the preallocation.
     */
    public static void allocateFirstBlock(Storage storage, long length) throws IOException {
        storage.writeZeroes(0, Math.min(4096, length));
    }
}
