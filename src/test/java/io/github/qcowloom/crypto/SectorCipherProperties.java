package io.github.qcowloom.crypto;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.nio.ByteBuffer;
import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/** Every implemented cipher, mode and IV generator: decrypt undoes encrypt, and sectors do not depend on each other. */
class SectorCipherProperties {
    @Property(tries = 80)
    void decryptUndoesEncryptAndEachSectorStandsAlone(@ForAll("algorithms") LuksAlgorithms algorithms,
            @ForAll long firstSector, @ForAll @IntRange(min = 1, max = 37) int sectors) {
        byte[] key = LuksFixtures.random(algorithms.masterKeyLength());
        SectorCipher cipher = SectorCipher.of(algorithms, key);
        byte[] plaintext = LuksFixtures.random(sectors * SectorCipher.SECTOR_SIZE);
        byte[] whole = SectorCipherTest.encrypted(cipher, firstSector, plaintext);
        assertFalse(Arrays.equals(plaintext, whole));
        for (int k = 0; k < sectors; k++) {
            int at = k * SectorCipher.SECTOR_SIZE;
            byte[] one = Arrays.copyOfRange(plaintext, at, at + SectorCipher.SECTOR_SIZE);
            assertArrayEquals(SectorCipherTest.encrypted(cipher, firstSector + k, one),
                    Arrays.copyOfRange(whole, at, at + SectorCipher.SECTOR_SIZE), "sector " + k);
        }
        ByteBuffer back = ByteBuffer.wrap(whole);
        cipher.decrypt(firstSector, back);
        assertArrayEquals(plaintext, back.array());
    }

    @Provide
    Arbitrary<LuksAlgorithms> algorithms() {
        return Combinators.combine(Arbitraries.of(LuksCipher.AES_128, LuksCipher.AES_192, LuksCipher.AES_256),
                Arbitraries.of(LuksCipherMode.XTS, LuksCipherMode.CBC, LuksCipherMode.ECB),
                Arbitraries.of(LuksIvGen.values()),
                Arbitraries.of(LuksHash.MD5, LuksHash.SHA256)).as((cipher, mode, ivgen, hash) -> {
                    try {
                        return LuksAlgorithms.forCreate(LuksFixtures.options(cipher, mode, ivgen, hash, hash));
                    } catch (Exception refused) {
                        // AES-192 outside XTS, or an ESSIV hash no AES key fits: not a volume anyone can make.
                        return null;
                    }
                }).filter(a -> a != null);
    }
}
