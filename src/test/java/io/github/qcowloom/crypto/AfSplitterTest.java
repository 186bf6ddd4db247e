package io.github.qcowloom.crypto;

import static io.github.qcowloom.crypto.LuksFixtures.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.security.SecureRandom;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The AF splitter against values worked out apart from it (Python's hashlib running the steps of QEMU's afsplit.c):
 * hash i = H(be32(i) || part i), the last part short when the block is not whole digests.
 */
class AfSplitterTest {
    @ParameterizedTest(name = "{0}, {1} bytes")
    @CsvSource({
            // Two parts: 20 bytes, then the last 5 from a whole SHA-1 of be32(1) and 5 bytes.
            "sha1, 25, 84e066de1e0d3544386085dd64a6451af137c6f05745bbfa93",
            // One whole digest: the final part is not empty but digest-long.
            "sha256, 32, bff51a6d513395979e3a870c8483769a5a70002e6e32c146c53e1d2edc467002",
            "sha256, 64, bff51a6d513395979e3a870c8483769a5a70002e6e32c146c53e1d2edc467002"
                    + "b32f0e0ffb9565b7420f28f7178244f549461806e38b750e2d47de25d70e9049"})
    void diffuseOfCountingBytes(String hash, int length, String expected) {
        byte[] block = counting(0, length);
        AfSplitter.diffuse(LuksHash.byName(hash).orElseThrow().newDigest(), block);
        assertEquals(expected, hex(block));
    }

    /**
     * With the "random" stripes known, the last stripe is fixed: the input XOR the chain of the others, each XORed
     * into the block and diffused in turn.
     */
    @Test
    void encodeWithKnownStripes() {
        byte[] in = counting(100, 25);
        byte[] out = AfSplitter.encode(LuksHash.SHA1, 25, 3, in, new CountingRandom());
        byte[] noise = new byte[50];
        new CountingRandom().nextBytes(noise);
        assertArrayEquals(noise, Arrays.copyOf(out, 50), "the stripes before the last are the random bytes");
        assertEquals("32a6f51481651a98cbbc4062cf8caf2d9db3676af1c33bae25", hex(Arrays.copyOfRange(out, 50, 75)));
        assertArrayEquals(in, AfSplitter.decode(LuksHash.SHA1, 25, 3, out));
    }

    @Test
    void oneStripeIsTheInputItself() {
        byte[] in = LuksFixtures.random(32);
        assertArrayEquals(in, AfSplitter.encode(LuksHash.SHA256, 32, 1, in, LuksFixtures.RANDOM));
        assertArrayEquals(in, AfSplitter.decode(LuksHash.SHA256, 32, 1, in));
    }

    @Test
    void misshapenInputIsRefused() {
        assertThrows(IllegalArgumentException.class,
                () -> AfSplitter.encode(LuksHash.SHA256, 32, 4000, new byte[31], LuksFixtures.RANDOM));
        assertThrows(IllegalArgumentException.class, () -> AfSplitter.decode(LuksHash.SHA256, 32, 4000,
                new byte[32 * 3999]));
        assertThrows(IllegalArgumentException.class, () -> AfSplitter.decode(LuksHash.SHA256, 32, 0, new byte[0]));
    }

    private static byte[] counting(int from, int length) {
        byte[] bytes = new byte[length];
        for (int i = 0; i < length; i++) {
            bytes[i] = (byte) (from + i);
        }
        return bytes;
    }

    /** "Random" bytes 3, 10, 17, ...: byte i is 7i + 3. */
    private static final class CountingRandom extends SecureRandom {
        @Override
        public void nextBytes(byte[] bytes) {
            for (int i = 0; i < bytes.length; i++) {
                bytes[i] = (byte) (i * 7 + 3);
            }
        }
    }
}
