package io.github.qcowloom.crypto;

/**
 * One cipher mode run over whole 512-byte sectors, each with its own IV: the per-use half of a {@link SectorCipher}.
 * Holds JDK Cipher objects, which are not thread-safe: one thread at a time.
 */
interface SectorMode {
    /**
     * Encrypts or decrypts {@code sectors} sectors (at most {@link SectorCipher#CHUNK_SECTORS}) of {@code buf} from
     * {@code offset} in place. {@code ivs} holds each sector's 16-byte IV in turn (unused by ECB); the mode may
     * overwrite them.
     */
    void crypt(boolean encrypt, byte[] buf, int offset, int sectors, byte[] ivs);

    /** A new one for {@code mode} keyed with {@code key}. */
    static SectorMode of(LuksCipherMode mode, byte[] key) {
        return switch (mode) {
            case XTS -> new XtsSectors(key);
            case CBC -> new CbcSectors(key);
            case ECB -> new EcbSectors(key);
            case CTR -> throw new IllegalArgumentException("ctr is not implemented");
        };
    }
}
