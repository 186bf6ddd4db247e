package io.github.qcowloom.crypto;

import java.util.Optional;

/** The IV generators QEMU knows (QCryptoIVGenAlgorithm), by QEMU's names; all three are implemented. */
public enum LuksIvGen implements QemuNamed {
    /** The sector number's low 32 bits, little endian, zero-padded. */
    PLAIN("plain"),
    /** The sector number, 64 bits little endian, zero-padded. */
    PLAIN64("plain64"),
    /** The plain64 block encrypted with a key that is a hash of the data key. */
    ESSIV("essiv");

    private final String qemuName;

    LuksIvGen(String qemuName) {
        this.qemuName = qemuName;
    }

    @Override
    public String qemuName() {
        return qemuName;
    }

    /** The IV generator QEMU names {@code name}, if any. */
    public static Optional<LuksIvGen> byName(String name) {
        return QemuNamed.byName(LuksIvGen.class, name);
    }
}
