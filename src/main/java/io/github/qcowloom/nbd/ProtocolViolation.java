package io.github.qcowloom.nbd;

import java.io.IOException;

/** The peer broke the protocol in a way that leaves the stream unusable: the connection is dropped. */
final class ProtocolViolation extends IOException {
    ProtocolViolation(String message) {
        super(message);
    }
}
