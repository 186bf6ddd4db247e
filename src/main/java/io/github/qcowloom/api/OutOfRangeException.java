package io.github.qcowloom.api;

import java.io.IOException;

/** A request reaches outside the device: a caller error, not an image problem (NBD answers EINVAL). */
public class OutOfRangeException extends IOException {
    public OutOfRangeException(String message) {
        super(message);
    }
}
