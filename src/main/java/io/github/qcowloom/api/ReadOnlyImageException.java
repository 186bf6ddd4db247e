package io.github.qcowloom.api;

import java.io.IOException;

/** A write was sent to an image opened read-only (NBD answers EPERM). */
public class ReadOnlyImageException extends IOException {
    public ReadOnlyImageException(String message) {
        super(message);
    }
}
