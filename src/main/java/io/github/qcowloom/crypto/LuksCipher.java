package io.github.qcowloom.crypto;

import io.github.qcowloom.api.ImageException;
import java.util.Optional;
import java.util.function.Function;

/**
 * The block ciphers QEMU knows (QCryptoCipherAlgorithm), by QEMU's names, with the family name a LUKS header
 * spells in cipher_name. Only AES is implemented; the others are listed so that QEMU's own refusals (a cipher
 * LUKS cannot name, a digest no key size fits) keep QEMU's words, and the rest are refused as unsupported.
 */
public enum LuksCipher implements QemuNamed {
    AES_128("aes-128", "aes", "AES", 16),
    AES_192("aes-192", "aes", "AES", 24),
    AES_256("aes-256", "aes", "AES", 32),
    /** Not usable with LUKS: QEMU's LUKS name map has no entry for it. */
    DES("des", null, null, 8),
    /** Not usable with LUKS: QEMU's LUKS name map has no entry for it. */
    TRIPLE_DES("3des", null, null, 24),
    CAST5_128("cast5-128", "cast5", null, 16),
    SERPENT_128("serpent-128", "serpent", "Serpent", 16),
    SERPENT_192("serpent-192", "serpent", "Serpent", 24),
    SERPENT_256("serpent-256", "serpent", "Serpent", 32),
    TWOFISH_128("twofish-128", "twofish", "Twofish", 16),
    TWOFISH_192("twofish-192", "twofish", "Twofish", 24),
    TWOFISH_256("twofish-256", "twofish", "Twofish", 32);

    private final String qemuName;
    private final String luksName;
    private final String essivFamily;
    private final int keyLength;

    LuksCipher(String qemuName, String luksName, String essivFamily, int keyLength) {
        this.qemuName = qemuName;
        this.luksName = luksName;
        this.essivFamily = essivFamily;
        this.keyLength = keyLength;
    }

    @Override
    public String qemuName() {
        return qemuName;
    }

    /** What a LUKS header's cipher_name says for it ("aes"), or null when LUKS cannot name it. */
    public String luksName() {
        return luksName;
    }

    /** Bytes of one key (for XTS the master key holds two). */
    public int keyLength() {
        return keyLength;
    }

    /** Whether this package implements it. */
    public boolean implemented() {
        return "aes".equals(luksName);
    }

    /** The cipher QEMU names {@code name}, if any. */
    public static Optional<LuksCipher> byName(String name) {
        return QemuNamed.byName(LuksCipher.class, name);
    }

    /** The cipher a LUKS header names {@code luksName} with keys of {@code keyLength} bytes, if any. */
    static Optional<LuksCipher> byLuksName(String luksName, long keyLength) {
        for (LuksCipher c : values()) {
            if (luksName.equals(c.luksName) && c.keyLength == keyLength) {
                return Optional.of(c);
            }
        }
        return Optional.empty();
    }

    /**
     * The cipher of ESSIV IVs when the ESSIV hash is {@code hash}: dm-crypt keys it with the whole digest, so it is
     * the member of this cipher's family whose key is as long as the digest (QEMU's
     * qcrypto_block_luks_essiv_cipher). When there is none, {@code failure} makes the exception from QEMU's message.
     */
    <X extends ImageException> LuksCipher essiv(LuksHash hash, Function<String, X> failure) throws X {
        int digest = hash.digestLength();
        if (digest == keyLength) {
            return this;
        }
        if (essivFamily == null) {
            throw failure.apply("Cipher " + qemuName + " not supported with essiv");
        }
        for (LuksCipher c : values()) {
            if (essivFamily.equals(c.essivFamily) && c.keyLength == digest) {
                return c;
            }
        }
        throw failure.apply("No " + essivFamily + " cipher with key size " + digest + " available");
    }
}
