package io.github.qcowloom.api;

import java.io.IOException;

/**
 * The contexts qemu-img puts before the failures of an open: "Could not open 'x': " around an image's, "Could not
 * open backing file: " around its backing file's. They go on the failures whose messages are QEMU's own (a lock
 * refused, a passphrase missing or refused, options that do not fit, a backing or data file missing, an image that
 * is corrupt or asks for what is not supported); others keep the words they have.
 */
public final class OpenFailures {
    private OpenFailures() {
    }

    /** {@code e} with {@code context} before its message where its type takes one (its cause {@code e}), else e. */
    public static IOException withContext(IOException e, String context) {
        return switch (e) {
            case ImageLockedException locked -> locked.withContext(context);
            case EncryptionKeyException key -> key.withContext(context);
            case ImageOptionsException options -> options.withContext(context);
            case ReferencedFileException referenced -> referenced.withContext(context);
            case CorruptImageException corrupt -> corrupt.withContext(context);
            case UnsupportedFeatureException unsupported -> unsupported.withContext(context);
            default -> e;
        };
    }

    /** {@code e} without its context {@code given} (which {@link #withContext} put there); if none, {@code e}. */
    public static IOException withoutContext(IOException e, String given) {
        if (e.getCause() instanceof IOException reason && reason.getClass() == e.getClass()
                && String.valueOf(e.getMessage()).equals(given + reason.getMessage())) {
            return reason;
        }
        return e;
    }

    /**
     * {@code e} with its context {@code given} (which {@link #withContext} put there) replaced by {@code wanted}; if
     * {@code e} has no such context, {@code e} itself.
     */
    public static IOException replaceContext(IOException e, String given, String wanted) {
        IOException reason = withoutContext(e, given);
        if (reason == e) {
            return e;
        }
        IOException renamed = withContext(reason, wanted);
        return renamed == reason ? e : renamed;
    }
}
