package io.github.qcowloom.crypto;

import io.github.qcowloom.api.ImageException;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * What a new LUKS volume is made with: QEMU's QCryptoBlockCreateOptionsLUKS less the secret, with QEMU's
 * defaults (aes-256, xts, plain64, sha256, 2000 ms). {@link #parse} takes QEMU's option names and values.
 *
 * @param cipherAlg the cipher ("aes-256")
 * @param cipherMode the cipher mode ("xts")
 * @param ivgenAlg the IV generator ("plain64")
 * @param ivgenHashAlg the hash named after the IV generator, or null: none, or sha256 for essiv
 * @param hashAlg the hash of PBKDF2 and the AF splitter
 * @param iterTimeMillis milliseconds of PBKDF2 to spend unlocking a key slot; unsigned, as QEMU's uint64
 */
public record LuksOptions(LuksCipher cipherAlg, LuksCipherMode cipherMode, LuksIvGen ivgenAlg,
        LuksHash ivgenHashAlg, LuksHash hashAlg, long iterTimeMillis) {
    /** The prefix-less option names, as QEMU's luks driver takes them; key-secret is the caller's to resolve. */
    public static final String CIPHER_ALG = "cipher-alg";
    public static final String CIPHER_MODE = "cipher-mode";
    public static final String IVGEN_ALG = "ivgen-alg";
    public static final String IVGEN_HASH_ALG = "ivgen-hash-alg";
    public static final String HASH_ALG = "hash-alg";
    public static final String ITER_TIME = "iter-time";
    public static final String KEY_SECRET = "key-secret";

    public LuksOptions {
        Objects.requireNonNull(cipherAlg, "cipherAlg");
        Objects.requireNonNull(cipherMode, "cipherMode");
        Objects.requireNonNull(ivgenAlg, "ivgenAlg");
        Objects.requireNonNull(hashAlg, "hashAlg");
    }

    /** QEMU's defaults: aes-256, xts, plain64, no IV hash, sha256, 2000 ms. */
    public static LuksOptions defaults() {
        return new LuksOptions(LuksCipher.AES_256, LuksCipherMode.XTS, LuksIvGen.PLAIN64, null, LuksHash.SHA256,
                2000);
    }

    /** The IV generator's hash as QEMU's create settles it: sha256 when essiv names none. */
    LuksHash effectiveIvgenHashAlg() {
        return ivgenHashAlg == null && ivgenAlg == LuksIvGen.ESSIV ? LuksHash.SHA256 : ivgenHashAlg;
    }

    /**
     * Options from QEMU's names and values, the defaults for those not given. Every key of {@code options} starts
     * with {@code prefix} ("" for the luks driver, "encrypt." for qcow2); key-secret is accepted and left to the
     * caller. Names and values QEMU would refuse are refused in its words; algorithms QEMU knows but this package
     * does not implement are accepted here and refused by {@link LuksFormat#create}.
     */
    public static LuksOptions parse(Map<String, String> options, String prefix) throws ImageException {
        LuksOptions d = defaults();
        LuksCipher cipher = d.cipherAlg();
        LuksCipherMode mode = d.cipherMode();
        LuksIvGen ivgen = d.ivgenAlg();
        LuksHash ivgenHash = d.ivgenHashAlg();
        LuksHash hash = d.hashAlg();
        long iterTime = d.iterTimeMillis();
        for (Map.Entry<String, String> option : options.entrySet()) {
            String key = option.getKey();
            String value = option.getValue();
            String name = key.startsWith(prefix) ? key.substring(prefix.length()) : null;
            switch (name == null ? "" : name) {
                case CIPHER_ALG -> cipher = value(LuksCipher.byName(value), name, value);
                case CIPHER_MODE -> mode = value(LuksCipherMode.byName(value), name, value);
                case IVGEN_ALG -> ivgen = value(LuksIvGen.byName(value), name, value);
                case IVGEN_HASH_ALG -> ivgenHash = value(LuksHash.byName(value), name, value);
                case HASH_ALG -> hash = value(LuksHash.byName(value), name, value);
                case ITER_TIME -> iterTime = number(key, value);
                case KEY_SECRET -> {
                }
                default -> throw new ImageException("Invalid parameter '" + key + "'");
            }
        }
        return new LuksOptions(cipher, mode, ivgen, ivgenHash, hash, iterTime);
    }

    /** QEMU's QAPI visitor names the option without its prefix here. */
    private static <E> E value(Optional<E> found, String name, String value) throws ImageException {
        return found.orElseThrow(() -> new ImageException("Parameter '" + name + "' does not accept value '"
                + value + "'"));
    }

    /**
     * An unsigned number as QemuOpts reads one (strtoull with base 0: decimal, 0x hex, 0 octal, a minus sign
     * wrapping around), refused in its words.
     */
    private static long number(String key, String value) throws ImageException {
        String digits = value.startsWith("-") || value.startsWith("+") ? value.substring(1) : value;
        boolean hex = digits.length() > 2 && (digits.startsWith("0x") || digits.startsWith("0X"));
        boolean octal = !hex && digits.length() > 1 && digits.startsWith("0");
        int radix = hex ? 16 : octal ? 8 : 10;
        digits = digits.substring(hex ? 2 : octal ? 1 : 0);
        if (digits.isEmpty() || !digits.chars().allMatch(c -> Character.digit(c, radix) >= 0)) {
            throw new ImageException("Parameter '" + key + "' expects a number");
        }
        long number;
        try {
            number = Long.parseUnsignedLong(digits, radix);
        } catch (NumberFormatException e) {
            throw new ImageException("Value '" + value + "' is too large for parameter '" + key + "'");
        }
        return value.startsWith("-") ? -number : number;
    }
}
