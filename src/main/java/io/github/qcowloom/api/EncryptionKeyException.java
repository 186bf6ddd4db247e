package io.github.qcowloom.api;

/**
 * An encrypted image could not be unlocked: no passphrase was given where one is needed, or none of its key slots
 * takes the one given. The message is QEMU's ("Parameter 'encrypt.key-secret' is required for cipher", "Invalid
 * password, cannot unlock any keyslot"), preceded by the image's name where the open knows it.
 */
public class EncryptionKeyException extends ImageException {
    public EncryptionKeyException(String message) {
        super(message);
    }

    /** The same failure, its message preceded by {@code context} (qemu-img's "Could not open 'x': "). */
    public EncryptionKeyException withContext(String context) {
        EncryptionKeyException e = new EncryptionKeyException(context + getMessage());
        e.initCause(this);
        return e;
    }
}
