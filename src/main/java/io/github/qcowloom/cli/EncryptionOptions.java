package io.github.qcowloom.cli;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.crypto.LuksOptions;
import io.github.qcowloom.image.ImageCreator;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The {@code encrypt.*} creation options of qemu-img create and convert ({@code encrypt.format=luks|aes},
 * {@code encrypt.key-secret=ID} and the LUKS algorithms; {@code encryption=on} for AES), checked in qemu-img 7.2's
 * order and words: the options themselves first (its QAPI visitor), the secret when the image is made (its
 * qcow2_co_create, after its checks of the other options).
 *
 * @param luks the LUKS volume's algorithms and PBKDF time; null for AES, which has none
 * @param keySecret the id of the secret that holds the passphrase, or null if none was named
 * @param secrets the command's secret objects
 */
record EncryptionOptions(LuksOptions luks, String keySecret, QemuObjects secrets) {
    /** The options in the order of QEMU's qcow2 option list: the order qemu-img prints them in. */
    static final List<String> KEYS = List.of("encryption", "encrypt.format", "encrypt.key-secret",
            "encrypt.cipher-alg", "encrypt.cipher-mode", "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg",
            "encrypt.hash-alg", "encrypt.iter-time");

    /** True for a key this class takes. */
    static boolean isEncryptionKey(String key) {
        return KEYS.contains(key);
    }

    /**
     * True if {@code opts} ask for encryption of any format (convert -c refuses it before anything is made): its
     * check reads {@code encryption} as a boolean (qemu_opt_get_bool), where create reads its value as a format.
     */
    static boolean asked(Map<String, String> opts) {
        return opts.containsKey("encrypt.format")
                || Boolean.TRUE.equals(CreateOptionsParser.bool(opts.getOrDefault("encryption", "off")));
    }

    /**
     * What {@code encryption}, QEMU's older alias of {@code encrypt.format}, says the format is, or null: "on" is
     * AES and "off" says nothing, as qcow2_co_create_opts reads them; any other value (QemuOpts took it as a
     * boolean) goes to encrypt.format as it is, which then refuses it.
     */
    private static String legacyFormat(Map<String, String> opts) {
        String value = opts.get("encryption");
        return value == null || value.equals("off") ? null : value.equals("on") ? "aes" : value;
    }

    /**
     * The format {@code opts} name by encrypt.format or its alias, refused where both are given: qcow2_co_create_opts
     * reads the alias first, before any other creation option.
     */
    static String format(Map<String, String> opts) throws ImageException {
        String format = opts.get("encrypt.format");
        String legacy = legacyFormat(opts);
        if (legacy != null && format != null) {
            throw new ImageException("'encrypt.format' and its alias 'encryption' can't be used at the same time");
        }
        return legacy != null ? legacy : format;
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
    static EncryptionOptions of(Map<String, String> opts, QemuObjects secrets) throws ImageException {
        Map<String, String> encrypt = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : opts.entrySet()) {
            if (isEncryptionKey(e.getKey()) && e.getKey().startsWith("encrypt.")) {
                encrypt.put(e.getKey().substring("encrypt.".length()), e.getValue());
            }
        }
        encrypt.remove("format");
        String format = format(opts);
        if (format == null) {
            if (encrypt.isEmpty()) {
                return null;
            }
            throw new ImageException("Parameter 'encrypt.format' is missing");
        }
        if (!format.equals("luks") && !format.equals("aes") && !format.equals("qcow")) {
            // "qcow" is QEMU's own name for AES (QCryptoBlockFormat), which its create takes too.
            throw new ImageException("Parameter 'format' does not accept value '" + format + "'");
        }
        String keySecret = encrypt.remove("key-secret");
        if (format.equals("luks")) {
            return new EncryptionOptions(LuksOptions.parse(encrypt, ""), keySecret, secrets);
        }
        // QCryptoBlockCreateOptionsQCow has a key-secret alone. Of several others QEMU names the first of its hash
        // table's order; this names the first in its option list's.
        for (String key : KEYS) {
            if (key.startsWith("encrypt.") && encrypt.containsKey(key.substring("encrypt.".length()))) {
                throw new ImageException("Parameter '" + key + "' is unexpected");
            }
        }
        return new EncryptionOptions(null, keySecret, secrets);
    }

    /** The passphrase: the key-secret must be named, and defined. */
    byte[] passphrase() throws ImageException {
        if (keySecret == null) {
            throw new ImageException("Parameter 'encrypt.key-secret' is required for cipher");
        }
        return secrets.passphrase(keySecret);
    }

    /**
     * Creates the image at {@code path} as {@code options} say, encrypted as these say, once those options passed
     * create's checks (the passphrase is looked up after them, as qcow2_co_create looks it up); returns the
     * passphrase, which the caller wipes.
     */
    byte[] create(Path path, CreateOptions options) throws IOException {
        ImageCreator.validate(options);
        byte[] passphrase = passphrase();
        try {
            if (luks == null) {
                ImageCreator.createAes(path, options);
            } else {
                ImageCreator.create(path, options, luks, passphrase);
            }
            return passphrase;
        } catch (IOException | RuntimeException e) {
            Arrays.fill(passphrase, (byte) 0);
            throw e;
        }
    }
}
