package io.github.qcowloom.crypto;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.qcowloom.api.ImageException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** LUKS creation options by QEMU's names and values, refused in qemu-img 7.2's words. */
class LuksOptionsTest {
    @Test
    void nothingGivenIsQemusDefaults() throws Exception {
        LuksOptions o = LuksOptions.parse(Map.of(), "");
        assertEquals(new LuksOptions(LuksCipher.AES_256, LuksCipherMode.XTS, LuksIvGen.PLAIN64, null,
                LuksHash.SHA256, 2000), o);
        assertEquals(LuksOptions.defaults(), o);
    }

    @Test
    void everyNameWithItsPrefix() throws Exception {
        Map<String, String> given = new LinkedHashMap<>();
        given.put("encrypt.cipher-alg", "aes-128");
        given.put("encrypt.cipher-mode", "cbc");
        given.put("encrypt.ivgen-alg", "essiv");
        given.put("encrypt.ivgen-hash-alg", "sha1");
        given.put("encrypt.hash-alg", "sha512");
        given.put("encrypt.iter-time", "10");
        given.put("encrypt.key-secret", "sec0");
        assertEquals(new LuksOptions(LuksCipher.AES_128, LuksCipherMode.CBC, LuksIvGen.ESSIV, LuksHash.SHA1,
                LuksHash.SHA512, 10), LuksOptions.parse(given, "encrypt."));
    }

    /** QEMU takes these; creating refuses them later, as unsupported here. */
    @Test
    void algorithmsQemuKnowsAreTaken() throws Exception {
        LuksOptions o = LuksOptions.parse(Map.of("cipher-alg", "serpent-256", "cipher-mode", "ctr", "hash-alg",
                "ripemd160"), "");
        assertEquals(LuksCipher.SERPENT_256, o.cipherAlg());
        assertEquals(LuksCipherMode.CTR, o.cipherMode());
        assertEquals(LuksHash.RIPEMD160, o.hashAlg());
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource({"10, 10", "0x10, 16", "010, 8", "0, 0", "-1, -1", "18446744073709551615, -1"})
    void iterTimeIsAnUnsignedNumberAsStrtoullReadsIt(String value, long expected) throws Exception {
        assertEquals(expected, LuksOptions.parse(Map.of("encrypt.iter-time", value), "encrypt.").iterTimeMillis());
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', textBlock = """
            encrypt.cipher-alg     | foo                  | Parameter 'cipher-alg' does not accept value 'foo'
            encrypt.cipher-alg     | sm4                  | Parameter 'cipher-alg' does not accept value 'sm4'
            encrypt.cipher-mode    | XTS                  | Parameter 'cipher-mode' does not accept value 'XTS'
            encrypt.ivgen-alg      | plain32              | Parameter 'ivgen-alg' does not accept value 'plain32'
            encrypt.ivgen-hash-alg | sha3                 | Parameter 'ivgen-hash-alg' does not accept value 'sha3'
            encrypt.hash-alg       | foo                  | Parameter 'hash-alg' does not accept value 'foo'
            encrypt.iter-time      | abc                  | Parameter 'encrypt.iter-time' expects a number
            encrypt.iter-time      | 12ms                 | Parameter 'encrypt.iter-time' expects a number
            encrypt.iter-time      | 99999999999999999999 | Value '99999999999999999999' is too large for parameter \
            'encrypt.iter-time'
            encrypt.foo            | 1                    | Invalid parameter 'encrypt.foo'
            cipher-alg             | aes-128              | Invalid parameter 'cipher-alg'
            """)
    void refusedInQemusWords(String name, String value, String message) {
        ImageException e = assertThrows(ImageException.class,
                () -> LuksOptions.parse(Map.of(name, value), "encrypt."));
        assertEquals(message, e.getMessage());
    }
}
