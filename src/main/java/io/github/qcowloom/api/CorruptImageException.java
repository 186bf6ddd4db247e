package io.github.qcowloom.api;

/** The image's metadata is malformed or inconsistent; the message says which field and why. */
public class CorruptImageException extends ImageException {
    public CorruptImageException(String message) {
        super(message);
    }

    public CorruptImageException(String message, Throwable cause) {
        super(message, cause);
    }
}
