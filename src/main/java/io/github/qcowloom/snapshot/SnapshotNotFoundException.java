package io.github.qcowloom.snapshot;

import io.github.qcowloom.api.ImageException;

/** No snapshot of the image has the id or name asked for (QEMU's -ENOENT). */
public class SnapshotNotFoundException extends ImageException {
    public SnapshotNotFoundException(String message) {
        super(message);
    }
}
