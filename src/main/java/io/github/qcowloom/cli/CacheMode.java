package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.nio.file.Path;

/**
 * qemu-img's cache modes as far as the host file is concerned: "none" and "directsync" bypass the page cache,
 * "unsafe" never syncs it (for convert's target; bench and create sync as they always do); and its aio modes, as
 * this driver's storage backends.
 */
final class CacheMode {
    private CacheMode() {
    }

    static boolean direct(String mode) {
        return switch (mode) {
            case "none", "off", "directsync" -> true; // "off": QEMU's other name for none
            case "writeback", "writethrough", "unsafe" -> false;
            default -> throw new IllegalArgumentException("Invalid cache option: " + mode);
        };
    }

    /** False for "unsafe", whose flushes QEMU ignores (cache.no-flush). */
    static boolean syncs(String mode) {
        direct(mode); // rejects unknown modes
        return !mode.equals("unsafe");
    }

    /**
     * The storage backend for qemu-img's {@code -i} and qemu-nbd's {@code --aio}: io_uring is ours too, and threads
     * (a blocking call on a thread for each request) is FileChannel. Linux AIO (native) is not implemented; QEMU
     * first requires O_DIRECT for it, in these words (the open's: "Could not open 'IMAGE': "), and so does this.
     */
    static StorageBackend aioBackend(String aio, boolean direct, Path image) throws ImageException {
        return switch (aio) {
            case "io_uring" -> StorageBackend.IO_URING;
            case "threads" -> StorageBackend.FILECHANNEL;
            default -> {
                if (!direct) {
                    throw new ImageException("Could not open '" + image + "': aio=native was specified, "
                            + "but it requires cache.direct=on, which was not specified.");
                }
                throw new UnsupportedFeatureException("aio=native",
                        "Linux AIO (aio=native) is not implemented: io_uring is this driver's asynchronous I/O");
            }
        };
    }
}
