package io.github.qcowloom.crypto;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.util.Optional;

/**
 * The algorithms of one LUKS volume, as QEMU's qcrypto_block_luks_parse_header reads them from a header (or its
 * create takes them from options), with what QEMU derives: the master key length and the ESSIV cipher. Only
 * the two factories make one, so every instance is one this package can run. Immutable.
 */
public final class LuksAlgorithms {
    private final LuksCipher cipher;
    private final LuksCipherMode mode;
    private final LuksIvGen ivgen;
    private final LuksHash ivgenHash;
    private final LuksCipher ivgenCipher;
    private final LuksHash hash;

    private LuksAlgorithms(LuksCipher cipher, LuksCipherMode mode, LuksIvGen ivgen, LuksHash ivgenHash,
            LuksCipher ivgenCipher, LuksHash hash) {
        this.cipher = cipher;
        this.mode = mode;
        this.ivgen = ivgen;
        this.ivgenHash = ivgenHash;
        this.ivgenCipher = ivgenCipher;
        this.hash = hash;
    }

    /**
     * The algorithms a header's cipher_name, cipher_mode ("xts-plain64", "cbc-essiv:sha256") and hash_spec
     * name, looked up in QEMU's order and refused in QEMU's words (CorruptImageException); then those QEMU knows
     * but this package does not implement are refused with an UnsupportedFeatureException.
     */
    static LuksAlgorithms fromHeader(String cipherName, String cipherModeSpec, String hashSpec, long masterKeyLength)
            throws ImageException {
        int dash = cipherModeSpec.indexOf('-');
        if (dash < 0) {
            throw new CorruptImageException("Unexpected cipher mode string format '" + cipherModeSpec + "'");
        }
        String ivgenName = cipherModeSpec.substring(dash + 1);
        LuksHash ivgenHash = null;
        boolean ivgenHashNamed = false;
        int colon = ivgenName.indexOf(':');
        if (colon >= 0) {
            ivgenHash = known(LuksHash.byName(ivgenName.substring(colon + 1)), "Hash algorithm",
                    ivgenName.substring(colon + 1));
            ivgenHashNamed = true;
            ivgenName = ivgenName.substring(0, colon);
        }
        String modeName = cipherModeSpec.substring(0, dash);
        LuksCipherMode mode = known(LuksCipherMode.byName(modeName), "Cipher mode", modeName);
        long keyLength = mode == LuksCipherMode.XTS ? masterKeyLength / 2 : masterKeyLength;
        // QEMU prints the u32 with %d.
        LuksCipher cipher = LuksCipher.byLuksName(cipherName, keyLength).orElseThrow(() -> new CorruptImageException(
                "Algorithm '" + cipherName + "' with key size " + (int) keyLength + " bytes not supported"));
        LuksHash hash = known(LuksHash.byName(hashSpec), "Hash algorithm", hashSpec);
        LuksIvGen ivgen = known(LuksIvGen.byName(ivgenName), "IV generator", ivgenName);
        LuksCipher ivgenCipher = cipher;
        if (ivgen == LuksIvGen.ESSIV) {
            if (!ivgenHashNamed) {
                throw new CorruptImageException("Missing IV generator hash specification");
            }
            ivgenCipher = cipher.essiv(ivgenHash, CorruptImageException::new);
        }
        if (mode == LuksCipherMode.XTS && masterKeyLength % 2 != 0) {
            // QEMU finds this only when it makes the cipher, unlocking; same words.
            throw new CorruptImageException("XTS cipher key length should be a multiple of 2");
        }
        LuksAlgorithms algorithms = new LuksAlgorithms(cipher, mode, ivgen, ivgenHash, ivgenCipher, hash);
        algorithms.requireImplemented(cipherName + "-" + cipherModeSpec);
        return algorithms;
    }

    /**
     * The algorithms {@code options} ask for, checked as QEMU's qcrypto_block_luks_create checks them (in its
     * words, ImageException), then refused with an UnsupportedFeatureException where not implemented here.
     */
    static LuksAlgorithms forCreate(LuksOptions options) throws ImageException {
        LuksCipher cipher = options.cipherAlg();
        if (cipher.luksName() == null) {
            throw new ImageException("Algorithm '" + cipher.qemuName() + "' not supported");
        }
        LuksHash ivgenHash = options.effectiveIvgenHashAlg();
        LuksCipher ivgenCipher = options.ivgenAlg() == LuksIvGen.ESSIV
                ? cipher.essiv(ivgenHash, ImageException::new) : cipher;
        LuksAlgorithms algorithms = new LuksAlgorithms(cipher, options.cipherMode(), options.ivgenAlg(), ivgenHash,
                ivgenCipher, options.hashAlg());
        algorithms.requireImplemented(cipher.luksName() + "-" + algorithms.cipherModeSpec());
        return algorithms;
    }

    /**
     * The algorithms of qcow2's AES encryption before LUKS ({@link QcowAes}): AES-128 in CBC mode with plain64 IVs.
     * It has no key slots, so no PBKDF2 hash: {@link #hash()} names SHA-256, which nothing of it runs.
     */
    static LuksAlgorithms qcowAes() {
        return new LuksAlgorithms(LuksCipher.AES_128, LuksCipherMode.CBC, LuksIvGen.PLAIN64, null,
                LuksCipher.AES_128, LuksHash.SHA256);
    }

    private static <E> E known(Optional<E> found, String what, String name) throws CorruptImageException {
        // QEMU's qcrypto_block_luks_name_lookup.
        return found.orElseThrow(() -> new CorruptImageException(what + " '" + name + "' not supported"));
    }

    /** Refuses, naming {@code spec} ("serpent-xts-plain64") as the feature, what this package cannot run. */
    private void requireImplemented(String spec) throws UnsupportedFeatureException {
        String feature = "LUKS cipher " + spec;
        if (!cipher.implemented()) {
            throw new UnsupportedFeatureException(feature, "LUKS cipher " + cipher.luksName() + " is not supported");
        }
        if (!mode.implemented()) {
            throw new UnsupportedFeatureException(feature, "LUKS cipher mode " + mode.qemuName()
                    + " is not supported");
        }
        if (!hash.implemented()) {
            throw new UnsupportedFeatureException("LUKS hash " + hash.qemuName(), "LUKS hash " + hash.qemuName()
                    + " is not supported");
        }
        if (ivgen == LuksIvGen.ESSIV && !ivgenHash.implemented()) {
            throw new UnsupportedFeatureException(feature, "LUKS IV generator hash " + ivgenHash.qemuName()
                    + " is not supported");
        }
        long keyMaterial = (long) masterKeyLength() * LuksHeader.STRIPES;
        if (keyMaterial % SectorCipher.SECTOR_SIZE != 0) {
            // AES-192 outside XTS: 96000 bytes. QEMU 7.2 aborts on an assertion there; this refuses instead.
            throw new UnsupportedFeatureException(feature, "LUKS key material of " + keyMaterial
                    + " bytes is not a whole number of " + SectorCipher.SECTOR_SIZE + "-byte sectors");
        }
    }

    /** The block cipher of data and key material. */
    public LuksCipher cipher() {
        return cipher;
    }

    /** The cipher mode. */
    public LuksCipherMode mode() {
        return mode;
    }

    /** The IV generator. */
    public LuksIvGen ivgen() {
        return ivgen;
    }

    /** The hash named after the IV generator (":sha256"), or empty; only ESSIV uses it. */
    public Optional<LuksHash> ivgenHash() {
        return Optional.ofNullable(ivgenHash);
    }

    /** The cipher ESSIV encrypts sector numbers with: keyed by a whole digest, so maybe not {@link #cipher()}. */
    public LuksCipher ivgenCipher() {
        return ivgenCipher;
    }

    /** The hash of PBKDF2 and the AF splitter (hash_spec). */
    public LuksHash hash() {
        return hash;
    }

    /** Bytes of the master key: the cipher's key, twice for XTS. */
    public int masterKeyLength() {
        return mode.masterKeyLength(cipher.keyLength());
    }

    /** The header's cipher_mode string: "xts-plain64", or "cbc-essiv:sha256" when a hash is named. */
    public String cipherModeSpec() {
        String spec = mode.qemuName() + "-" + ivgen.qemuName();
        return ivgenHash == null ? spec : spec + ":" + ivgenHash.qemuName();
    }

    /** Like a header spells it: "aes-256 xts-plain64 sha256". */
    @Override
    public String toString() {
        return cipher.qemuName() + " " + cipherModeSpec() + " " + hash.qemuName();
    }
}
