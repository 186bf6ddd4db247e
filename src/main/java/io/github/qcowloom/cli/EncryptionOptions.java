package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.crypto.LuksOptions;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@code encrypt.*} creation options of qemu-img create and convert ({@code encrypt.format=luks},
 * {@code encrypt.key-secret=ID} and the LUKS algorithms), checked in qemu-img 7.2's order and words, and the
 * passphrase the secret holds. AES encryption ({@code encrypt.format=aes}, {@code encryption=on}), which QEMU
 * itself no longer opens in its emulators, is refused as not done.
 *
 * @param luks the LUKS volume's algorithms and PBKDF time
 * @param passphrase the secret's bytes
 */
record EncryptionOptions(LuksOptions luks, byte[] passphrase) {
    /** The options in the order of QEMU's qcow2 option list: the order qemu-img prints them in. */
    static final List<String> KEYS = List.of("encryption", "encrypt.format", "encrypt.key-secret",
            "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg",
            "encrypt.hash-alg", "encrypt.iter-time");

    /** True for a key this class takes. */
    static boolean isEncryptionKey(String key) {
        return KEYS.contains(key);
    }

    /** True if {@code opts} ask for encryption of any format (convert -c refuses it before anything is made). */
    static boolean asked(Map<String, String> opts) {
        return opts.containsKey("encrypt.format") || legacyAes(opts);
    }

    /** {@code encryption=on}: QEMU's older spelling of {@code encrypt.format=aes}. */
    private static boolean legacyAes(Map<String, String> opts) {
        return opts.containsKey("encryption") && Boolean.TRUE.equals(CreateOptionsParser.bool(opts.get("encryption")));
    }

    /** QemuOpts' parse of the one number among them, which fails before anything is printed. */
    static void checkNumbers(Map<String, String> opts) throws ImageException {
        if (opts.containsKey("encrypt.iter-time")) {
            LuksOptions.parse(Map.of("encrypt.iter-time", opts.get("encrypt.iter-time")), "encrypt.");
        }
    }

    /**
     * The encryption {@code opts} ask for, or null for none; refused as qemu-img refuses it (the caller adds the
     * image's name).
     */
    static EncryptionOptions of(Map<String, String> opts, SecretObjects secrets) throws ImageException {
        Map<String, String> luks = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : opts.entrySet()) {
            if (isEncryptionKey(e.getKey()) && e.getKey().startsWith("encrypt.")) {
                luks.put(e.getKey().substring("encrypt.".length()), e.getValue());
            }
        }
        String format = luks.remove("format");
        if (format == null && legacyAes(opts)) {
            format = "aes";
        }
        if (format == null) {
            if (luks.isEmpty()) {
                return null;
            }
            throw new ImageException("Parameter 'encrypt.format' is missing");
        }
        if (!format.equals("luks") && !format.equals("aes")) {
            throw new ImageException("Parameter 'format' does not accept value '" + format + "'");
        }
        if (format.equals("aes")) {
            throw new UnsupportedFeatureException("AES encryption", "AES encryption is not supported");
        }
        String secret = luks.remove("key-secret");
        LuksOptions options = LuksOptions.parse(luks, "");
        if (secret == null) {
            throw new ImageException("Parameter 'encrypt.key-secret' is required for cipher");
        }
        return new EncryptionOptions(options, secrets.passphrase(secret));
    }
}
