package io.github.qcowloom.crypto;

import java.util.Optional;

/**
 * An algorithm QEMU names in its QAPI enums (QCryptoCipherAlgorithm, QCryptoHashAlgorithm, ...). Headers and
 * options spell algorithms by these names, and QEMU looks them up by exact, case-sensitive match.
 */
interface QemuNamed {
    /** The name QEMU gives this algorithm: "aes-256", "xts", "plain64", "sha256". */
    String qemuName();

    /** The constant of {@code type} that QEMU names {@code name}, as qapi_enum_parse finds it. */
    static <E extends Enum<E> & QemuNamed> Optional<E> byName(Class<E> type, String name) {
        for (E e : type.getEnumConstants()) {
            if (e.qemuName().equals(name)) {
                return Optional.of(e);
            }
        }
        return Optional.empty();
    }
}
