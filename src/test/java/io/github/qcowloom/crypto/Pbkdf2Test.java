package io.github.qcowloom.crypto;

import static io.github.qcowloom.crypto.LuksFixtures.hex;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** PBKDF2 against RFC 6070 (HMAC-SHA1), the well-known HMAC-SHA256 vectors, and Python's hashlib for the rest. */
class Pbkdf2Test {
    @ParameterizedTest(name = "{0} {1}/{2} x{3}")
    @CsvSource(delimiter = '|', textBlock = """
            sha1   | password | salt | 1    | 20 | 0c60c80f961f0e71f3a9b524af6012062fe037a6
            sha1   | password | salt | 2    | 20 | ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957
            sha1   | password | salt | 4096 | 20 | 4b007901b765489abead49d926f721d065a429c1
            sha1   | passwordPASSWORDpassword | saltSALTsaltSALTsaltSALTsaltSALTsalt | 4096 | 25 \
                   | 3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038
            sha256 | password | salt | 1    | 32 | 120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b
            sha256 | password | salt | 2    | 32 | ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43
            sha256 | password | salt | 4096 | 32 | c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a
            sha256 | passwordPASSWORDpassword | saltSALTsaltSALTsaltSALTsaltSALTsalt | 4096 | 40 \
                   | 348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9
            sha512 | password | salt | 1    | 64 | 867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252\
            c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce
            md5    | password | salt | 1000 | 40 | 8d189946a32d883622a16ae18af0632f5791d5e7\
            b1abb0ab1757d28ce34056140335105994495f91
            sha224 | password | salt | 1000 | 40 | d3bcf320fd918908eafcaa460faf40e201f6508d\
            4e6f3d9c1c0abd30dae08cc8b1bc0657e2ebc229
            sha384 | password | salt | 1000 | 40 | 3bd37e2236941d4a77b1b5b714c6f913fabb6b08\
            41a6d7d8656b99d611e900fe06edb93b5b809efa
            """)
    void knownVectors(String hash, String password, String salt, long iterations, int length, String expected) {
        byte[] out = Pbkdf2.derive(LuksHash.byName(hash).orElseThrow(), ascii(password), ascii(salt), iterations,
                length);
        assertEquals(expected, hex(out));
    }

    /** RFC 6070's last vector: a NUL inside the password and the salt is hashed like any byte. */
    @Test
    void nulBytesAreDataHere() {
        byte[] out = Pbkdf2.derive(LuksHash.SHA1, ascii("pass\0word"), ascii("sa\0lt"), 4096, 16);
        assertEquals("56fa6aa75548099dcc37d7f03425e0c3", hex(out));
    }

    @Test
    void anEmptyPasswordIsAKeyOfItsOwn() {
        assertEquals("62384466264daadc4144018c6bd864648272b34da8980d31521ffcce92ae003b",
                hex(Pbkdf2.derive(LuksHash.SHA256, new byte[0], ascii("salt"), 2, 32)));
    }

    /** The bytes are hashed as given: UTF-8 and Latin-1 spellings of one string derive different keys. */
    @Test
    void passwordsAreRawBytes() throws Exception {
        String password = "pässwörd";
        byte[] utf8 = Pbkdf2.derive(LuksHash.SHA256, password.getBytes(StandardCharsets.UTF_8), ascii("salt"), 10, 32);
        byte[] latin1 = Pbkdf2.derive(LuksHash.SHA256, password.getBytes(StandardCharsets.ISO_8859_1), ascii("salt"),
                10, 32);
        assertEquals("a7c6550d6076554714927a330c15317e7629d4c20a79742ab398a6d16b025963", hex(utf8));
        assertEquals("37151503ed713c2c8fcc7b906c332755bfac3d00e1bf62104ad770f70b3f64ec", hex(latin1));
        // For ASCII the JDK's char-based factory agrees.
        SecretKeyFactory factory = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256");
        byte[] jdk = factory.generateSecret(new PBEKeySpec("ascii only".toCharArray(), ascii("NaCl"), 77, 256))
                .getEncoded();
        assertArrayEquals(jdk, Pbkdf2.derive(LuksHash.SHA256, ascii("ascii only"), ascii("NaCl"), 77, 32));
    }

    @Test
    void nonsenseIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> Pbkdf2.derive(LuksHash.SHA1, ascii("p"), ascii("s"), 0, 20));
        assertThrows(IllegalArgumentException.class,
                () -> Pbkdf2.derive(LuksHash.SHA1, ascii("p"), ascii("s"), 1L << 32, 20));
        assertThrows(IllegalArgumentException.class, () -> Pbkdf2.derive(LuksHash.SHA1, ascii("p"), ascii("s"), 1, 0));
        assertThrows(IllegalArgumentException.class,
                () -> Pbkdf2.derive(LuksHash.RIPEMD160, ascii("p"), ascii("s"), 1, 20));
    }

    /** A short budget measures soon, and the rate it gives is about what a run of that many iterations takes. */
    @Test
    void aShortBudgetMeasuresARate() {
        long start = System.nanoTime();
        long rate = Pbkdf2.iterationsPerSecond(LuksHash.SHA256, 32, Duration.ofMillis(30));
        assertTrue(System.nanoTime() - start < Duration.ofSeconds(10).toNanos());
        assertTrue(rate > 10_000, "iterations per second " + rate);
        long runStart = System.nanoTime();
        Pbkdf2.derive(LuksHash.SHA256, ascii("p"), ascii("s"), rate / 10, 32);
        long runMillis = (System.nanoTime() - runStart) / 1_000_000;
        // A tenth of a second's worth: generous bounds, the machine may be busy.
        assertTrue(runMillis < 2000, rate / 10 + " iterations took " + runMillis + " ms");
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.ISO_8859_1);
    }

    /**
     * Passwords longer than the hash's block (64 bytes, 128 for SHA-384 and SHA-512), which HMAC hashes first: against
     * the JDK's own PBKDF2, which agrees with ours for ASCII passwords.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"sha1", "sha256", "sha512"})
    void passwordsLongerThanTheBlockAsTheJdks(String name) throws Exception {
        LuksHash hash = LuksHash.byName(name).orElseThrow();
        String password = "a long passphrase, ".repeat(10); // 190 bytes
        byte[] salt = "NaCl and more salt".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        String jdk = "PBKDF2WithHmac" + switch (name) {
            case "sha1" -> "SHA1";
            case "sha256" -> "SHA256";
            default -> "SHA512";
        };
        byte[] expected = javax.crypto.SecretKeyFactory.getInstance(jdk).generateSecret(
                new javax.crypto.spec.PBEKeySpec(password.toCharArray(), salt, 1000, 64 * 8)).getEncoded();
        org.junit.jupiter.api.Assertions.assertArrayEquals(expected, Pbkdf2.derive(hash,
                password.getBytes(java.nio.charset.StandardCharsets.US_ASCII), salt, 1000, 64));
    }
}
