package io.github.qcowloom.api;

import java.io.IOException;

/**
 * Another process (or another open of the same file in this one) holds the image in a way that conflicts with
 * this open, as QEMU's lock bytes say (qcow2.md §8): it writes without sharing writes, or it refuses to share
 * what this open would do. The message is qemu-img's, two lines:
 * {@code Failed to get "write" lock} / {@code Is another process using the image [NAME]?}.
 */
public class ImageLockedException extends IOException {
    private final String file;

    public ImageLockedException(String file, String message) {
        super(message);
        this.file = file;
    }

    /** The same failure, its message preceded by {@code context} (qemu-img's "Could not open 'x': "). */
    public ImageLockedException withContext(String context) {
        ImageLockedException e = new ImageLockedException(file, context + getMessage());
        e.initCause(this);
        return e;
    }

    /** The file whose lock could not be taken, as its name was given (the image, a backing or data file). */
    public String file() {
        return file;
    }
}
