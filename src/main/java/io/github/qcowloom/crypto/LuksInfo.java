package io.github.qcowloom.crypto;

import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * What {@code qemu-img info} shows of a LUKS volume under "encrypt" (QEMU's QCryptoBlockInfoLUKS, filled by
 * qcrypto_block_luks_get_info); the components are QEMU's JSON keys in camel case.
 *
 * @param cipherAlg cipher-alg: "aes-256"
 * @param cipherMode cipher-mode: "xts"
 * @param ivgenAlg ivgen-alg: "plain64"
 * @param ivgenHashAlg ivgen-hash-alg: only for essiv
 * @param hashAlg hash-alg: "sha256"
 * @param payloadOffset payload-offset: bytes from the header to the encrypted payload
 * @param masterKeyIters master-key-iters
 * @param uuid uuid
 * @param slots slots: all eight, in order
 */
public record LuksInfo(LuksCipher cipherAlg, LuksCipherMode cipherMode, LuksIvGen ivgenAlg,
        Optional<LuksHash> ivgenHashAlg, LuksHash hashAlg, long payloadOffset, long masterKeyIters, String uuid,
        List<Slot> slots) implements EncryptionInfo {
    public LuksInfo {
        slots = List.copyOf(slots);
    }

    @Override
    public String format() {
        return "luks";
    }

    /**
     * One key slot as QEMU shows it.
     *
     * @param active whether it holds a key
     * @param keyOffset key-offset: bytes from the header to its key material
     * @param iters iters: only when active
     * @param stripes stripes: only when active
     */
    public record Slot(boolean active, long keyOffset, OptionalLong iters, OptionalLong stripes) {
    }
}
