package io.github.qcowloom.nbd;

import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.api.ReadOnlyImageException;

/** Maps a failed device call to the errno an NBD reply carries (proto.md "Error values"). */
final class Errors {
    private Errors() {
    }

    static int errno(Throwable e) {
        if (e instanceof OutOfRangeException || e instanceof IllegalArgumentException) {
            return Protocol.EINVAL;
        }
        if (e instanceof ReadOnlyImageException) {
            return Protocol.EPERM;
        }
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t.getMessage() != null && t.getMessage().contains("No space left")) {
                return Protocol.ENOSPC;
            }
        }
        return Protocol.EIO;
    }
}
