package io.github.qcowloom.api;

/** A size in the image or in a request is beyond what qcow2 (or QEMU) allows. QEMU answers these with EFBIG. */
public class ImageTooLargeException extends CorruptImageException {
    public ImageTooLargeException(String message) {
        super(message);
    }

    @Override
    public ImageTooLargeException withContext(String context) {
        ImageTooLargeException e = new ImageTooLargeException(context + getMessage());
        e.initCause(this);
        return e;
    }
}
