package io.github.qcowloom.crypto;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import javax.crypto.Cipher;
import javax.crypto.spec.SecretKeySpec;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * The batched XTS against a plain transcription of IEEE 1619's XTS-AES-blockEnc: one cipher call per block and
 * the tweak multiplied byte by byte, over runs of sectors longer than one batch.
 */
class XtsReferenceProperties {
    @Property(tries = 60)
    void batchedXtsIsTheStandardsBlockByBlock(@ForAll("keys") byte[] key, @ForAll long firstSector,
            @ForAll @IntRange(min = 1, max = 40) int sectors) throws Exception {
        byte[] plaintext = LuksFixtures.random(sectors * SectorCipher.SECTOR_SIZE);
        LuksCipher aes = key.length == 32 ? LuksCipher.AES_128 : LuksCipher.AES_256;
        SectorCipher cipher = SectorCipher.of(
                LuksFixtures.algorithms(aes, LuksCipherMode.XTS, LuksIvGen.PLAIN64, null), key);
        ByteBuffer data = ByteBuffer.wrap(plaintext.clone());
        cipher.encrypt(firstSector, data);
        assertArrayEquals(reference(key, firstSector, plaintext), data.array());
    }

    @Provide
    Arbitrary<byte[]> keys() {
        return Arbitraries.of(32, 64).flatMap(n -> Arbitraries.bytes().array(byte[].class).ofSize(n));
    }

    @Property(tries = 20)
    void keysOfOtherLengthsAreRefused(@ForAll @Size(min = 0, max = 80) byte[] key) throws Exception {
        LuksAlgorithms algorithms = LuksFixtures.algorithms(LuksCipher.AES_256, LuksCipherMode.XTS,
                LuksIvGen.PLAIN64, null);
        if (key.length != 64) {
            assertThrows(IllegalArgumentException.class, () -> SectorCipher.of(algorithms, key));
        }
    }

    private static byte[] reference(byte[] key, long firstSector, byte[] plaintext) throws Exception {
        int half = key.length / 2;
        Cipher data = Cipher.getInstance("AES/ECB/NoPadding");
        data.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(key, 0, half, "AES"));
        Cipher tweakCipher = Cipher.getInstance("AES/ECB/NoPadding");
        tweakCipher.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(key, half, half, "AES"));
        byte[] out = new byte[plaintext.length];
        for (int s = 0; s < plaintext.length / 512; s++) {
            byte[] i = new byte[16];
            long unit = firstSector + s;
            for (int b = 0; b < 8; b++) {
                i[b] = (byte) (unit >>> (8 * b));
            }
            byte[] t = tweakCipher.doFinal(i);
            for (int j = 0; j < 32; j++) {
                byte[] block = new byte[16];
                for (int b = 0; b < 16; b++) {
                    block[b] = (byte) (plaintext[s * 512 + j * 16 + b] ^ t[b]);
                }
                byte[] c = data.doFinal(block);
                for (int b = 0; b < 16; b++) {
                    out[s * 512 + j * 16 + b] = (byte) (c[b] ^ t[b]);
                }
                // IEEE 1619 5.2: multiply T by alpha, byte by byte with carries, 135 fed back into byte 0.
                int carry = 0;
                for (int b = 0; b < 16; b++) {
                    int next = (t[b] >> 7) & 1;
                    t[b] = (byte) ((t[b] << 1) | carry);
                    carry = next;
                }
                if (carry != 0) {
                    t[0] ^= (byte) 135;
                }
            }
        }
        return out;
    }
}
