package io.github.qcowloom.crypto;

import io.github.qcowloom.api.ImageException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.HexFormat;

/** Shared makings of the crypto tests: hex, algorithm sets, and volumes made without timing PBKDF2. */
final class LuksFixtures {
    static final byte[] PASSWORD = "correct horse".getBytes(StandardCharsets.UTF_8);
    /** A rate that makes every iteration count QEMU's minimum of 1000 (up to an iter-time of 1000 s): quick. */
    static final Pbkdf2.Rate MINIMUM_RATE = (hash, length) -> 1;
    static final SecureRandom RANDOM = new SecureRandom();

    private LuksFixtures() {}

    static byte[] hex(String hex) {
        return HexFormat.of().parseHex(hex);
    }

    static String hex(byte[] bytes) {
        return HexFormat.of().formatHex(bytes);
    }

    static LuksOptions options(LuksCipher cipher, LuksCipherMode mode, LuksIvGen ivgen, LuksHash ivgenHash,
            LuksHash hash) {
        return new LuksOptions(cipher, mode, ivgen, ivgenHash, hash, 10);
    }

    static LuksAlgorithms algorithms(LuksCipher cipher, LuksCipherMode mode, LuksIvGen ivgen, LuksHash ivgenHash)
            throws ImageException {
        return LuksAlgorithms.forCreate(options(cipher, mode, ivgen, ivgenHash, LuksHash.SHA256));
    }

    /** A volume of {@code options} under {@link #PASSWORD}, every PBKDF2 at 1000 iterations. */
    static LuksFormat.Created create(LuksOptions options) throws ImageException {
        return LuksFormat.create(options, PASSWORD, RANDOM, MINIMUM_RATE);
    }

    /** A reader of an in-memory header area. */
    static KeyMaterialReader reader(byte[] area) {
        return (offset, dst) -> System.arraycopy(area, Math.toIntExact(offset), dst, 0, dst.length);
    }

    static byte[] random(int length) {
        byte[] bytes = new byte[length];
        RANDOM.nextBytes(bytes);
        return bytes;
    }
}
