package io.github.qcowloom.nbd;

import java.io.IOException;

/** A TLS credentials directory that cannot serve: a file missing, unreadable, encrypted or not matching. */
public final class BadTlsCredentialsException extends IOException {
    public BadTlsCredentialsException(String message) {
        super(message);
    }
}
