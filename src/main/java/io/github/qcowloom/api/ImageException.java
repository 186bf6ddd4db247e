package io.github.qcowloom.api;

import java.io.IOException;

/** Base of every typed error the driver raises about an image: the image, not the host, is at fault. */
public class ImageException extends IOException {
    public ImageException(String message) {
        super(message);
    }

    public ImageException(String message, Throwable cause) {
        super(message, cause);
    }
}
