package io.github.qcowloom.api;

/**
 * The options an image was opened with do not fit the image, in QEMU's words: an encryption format its header does
 * not have ("No encryption in image header, but options specified format 'luks'"), options for a backing file the
 * chain does not have ("Must specify either driver or file"), or options its format does not take ("Block format
 * 'raw' does not support the option 'encrypt.key-secret'"). Preceded by where the open met it, as {@link
 * OpenFailures} adds it.
 */
public class ImageOptionsException extends ImageException {
    public ImageOptionsException(String message) {
        super(message);
    }

    /** The same failure, its message preceded by {@code context} (qemu-img's "Could not open 'x': "). */
    public ImageOptionsException withContext(String context) {
        ImageOptionsException e = new ImageOptionsException(context + getMessage());
        e.initCause(this);
        return e;
    }
}
