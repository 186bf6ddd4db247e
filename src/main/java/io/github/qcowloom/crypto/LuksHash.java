package io.github.qcowloom.crypto;

import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Optional;

/**
 * The hash algorithms QEMU knows (QCryptoHashAlgorithm), by QEMU's names. LUKS uses one for PBKDF2 and the AF
 * splitter (hash_spec) and may name another for ESSIV IVs. QEMU's list is kept whole so that a header naming
 * ripemd160 is told apart from one naming nonsense: the first is refused as unsupported, the second as corrupt.
 */
public enum LuksHash implements QemuNamed {
    MD5("md5", "MD5", 16),
    SHA1("sha1", "SHA-1", 20),
    SHA224("sha224", "SHA-224", 28),
    SHA256("sha256", "SHA-256", 32),
    SHA384("sha384", "SHA-384", 48),
    SHA512("sha512", "SHA-512", 64),
    /** Known to QEMU, not to the JDK: refused with an UnsupportedFeatureException. */
    RIPEMD160("ripemd160", null, 20);

    private final String qemuName;
    private final String jdkName;
    private final int digestLength;

    LuksHash(String qemuName, String jdkName, int digestLength) {
        this.qemuName = qemuName;
        this.jdkName = jdkName;
        this.digestLength = digestLength;
    }

    @Override
    public String qemuName() {
        return qemuName;
    }

    /** Bytes in one digest. */
    public int digestLength() {
        return digestLength;
    }

    /** Whether this package can compute it. */
    public boolean implemented() {
        return jdkName != null;
    }

    /** The hash QEMU names {@code name}, if any. */
    public static Optional<LuksHash> byName(String name) {
        return QemuNamed.byName(LuksHash.class, name);
    }

    /** A new digest of this algorithm (MessageDigest is not thread-safe: one per use). */
    MessageDigest newDigest() {
        try {
            return MessageDigest.getInstance(requireJdkName());
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("the JDK lacks " + jdkName, e);
        }
    }

    private String requireJdkName() {
        if (jdkName == null) {
            throw new IllegalArgumentException("hash " + qemuName + " is not implemented");
        }
        return jdkName;
    }
}
