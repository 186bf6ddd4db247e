package io.github.qcowloom.api;

/** The image's metadata is malformed or inconsistent; the message says which field and why. */
public class CorruptImageException extends ImageException {
    public CorruptImageException(String message) {
        super(message);
    }

    public CorruptImageException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The same failure, its message preceded by {@code context} (qemu-img's "Could not open 'x': "). */
    public CorruptImageException withContext(String context) {
        return new CorruptImageException(context + getMessage(), this);
    }
}
