package io.github.qcowloom.crypto;

import java.util.Optional;

/**
 * The cipher modes QEMU knows (QCryptoCipherMode), by QEMU's names. XTS, CBC and ECB are implemented; CTR is known
 * to QEMU and refused here as unsupported.
 */
public enum LuksCipherMode implements QemuNamed {
    ECB("ecb"),
    CBC("cbc"),
    XTS("xts"),
    CTR("ctr");

    private final String qemuName;

    LuksCipherMode(String qemuName) {
        this.qemuName = qemuName;
    }

    @Override
    public String qemuName() {
        return qemuName;
    }

    /** Whether this package implements it. */
    public boolean implemented() {
        return this != CTR;
    }

    /** Whether each sector takes an IV (QEMU's niv is 0 for ECB, so its IV generator is never asked). */
    boolean usesIv() {
        return this != ECB;
    }

    /** Master key bytes for a cipher whose key is {@code cipherKeyLength} bytes: XTS holds two keys. */
    int masterKeyLength(int cipherKeyLength) {
        return this == XTS ? 2 * cipherKeyLength : cipherKeyLength;
    }

    /** The mode QEMU names {@code name}, if any. */
    public static Optional<LuksCipherMode> byName(String name) {
        return QemuNamed.byName(LuksCipherMode.class, name);
    }
}
