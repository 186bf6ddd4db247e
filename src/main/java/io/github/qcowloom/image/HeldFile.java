package io.github.qcowloom.image;

import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.Storage;

/**
 * The image file an operation of several steps holds open, with its lock, from its first step to its last, as
 * qemu-img amend holds its image: each step opens the image on it, and closing the step's image leaves the file
 * (and the lock) to the next. Opening the file again instead would take a second lock, which the first refuses.
 */
final class HeldFile extends ForwardingStorage {
    HeldFile(Storage file) {
        super(file);
    }

    @Override
    public void close() {
        // The holder closes the file once the last step is done.
    }
}
