package io.github.qcowloom.storage;

import java.io.IOException;

/** The kernel or runtime refuses io_uring, so the caller falls back to FileChannel. */
final class UringUnavailableException extends IOException {
    UringUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
