package io.github.qcowloom.api;

/**
 * A backing file of the image's chain is not there, or may not be read. The message is qemu-img's ("Could not open
 * 'base.qcow2': No such file or directory", the name as QEMU combines it with the image's), preceded by "Could not
 * open backing file: " for each level down the chain and by the image's name where the open knows it ({@link
 * OpenFailures}); the cause is the file system's own exception.
 */
public class BackingFileException extends ImageException {
    public BackingFileException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The same failure, its message preceded by {@code context} (qemu-img's "Could not open 'x': "). */
    public BackingFileException withContext(String context) {
        return new BackingFileException(context + getMessage(), this);
    }
}
