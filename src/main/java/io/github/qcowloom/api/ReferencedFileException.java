package io.github.qcowloom.api;

/**
 * A file the image names, a backing file of its chain or its external data file, is not there, or may not be read.
 * The message is qemu-img's ("Could not open 'base.qcow2': No such file or directory", the name as QEMU combines it
 * with the image's), preceded by "Could not open backing file: " for each level down the chain and by the image's
 * name where the open knows it ({@link OpenFailures}); the cause is the file system's own exception.
 */
public class ReferencedFileException extends ImageException {
    public ReferencedFileException(String message, Throwable cause) {
        super(message, cause);
    }

    /** The same failure, its message preceded by {@code context} (qemu-img's "Could not open 'x': "). */
    public ReferencedFileException withContext(String context) {
        return new ReferencedFileException(context + getMessage(), this);
    }
}
