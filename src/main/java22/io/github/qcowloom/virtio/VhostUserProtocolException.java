package io.github.qcowloom.virtio;

import java.io.IOException;

/** The front end sent something the protocol does not allow: the back end closes the connection with this reason. */
final class VhostUserProtocolException extends IOException {
    private static final long serialVersionUID = 1L;

    VhostUserProtocolException(String message) {
        super(message);
    }
}
