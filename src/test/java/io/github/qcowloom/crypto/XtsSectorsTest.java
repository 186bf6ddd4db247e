package io.github.qcowloom.crypto;

import static io.github.qcowloom.crypto.LuksFixtures.hex;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * XTS-AES against the IEEE P1619 test vectors, through the sector cipher as LUKS runs it: xts-plain64 makes the
 * tweak the sector number, 64 bits little endian, as the standard encodes its data unit sequence number.
 */
class XtsSectorsTest {
    /** Vector 4's plaintext, and vector 10's: the bytes 00..ff twice. */
    private static final String COUNTING = counting();
    private static final String VECTOR_4_CIPHERTEXT =
            "27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89c"
            + "c78cf7f5e543445f8333d8fa7f56000005279fa5d8b5e4ad40e736ddb4d35412328063fd2aab53e5ea1e0a9f332500a5"
            + "df9487d07a5c92cc512c8866c7e860ce93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad0265"
            + "5ea92dc4c4e41a8952c651d33174be51a10c421110e6d81588ede82103a252d8a750e8768defffed9122810aaeb99f91"
            + "72af82b604dc4b8e51bcb08235a6f4341332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c"
            + "5ccf2a55d705ddcd86d449511ceb7ec30bf12b1fa35b913f9f747a8afd1b130e94bff94effd01a91735ca1726acd0b19"
            + "7c4e5b03393697e126826fb6bbde8ecc1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3"
            + "e7ff72b1e99785ca0a7e7720c5b36dc6d72cac9574c8cbbc2f801e23e56fd344b07f22154beba0f08ce8891e643ed995"
            + "c94d9a69c9f1b5f499027a78572aeebd74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752"
            + "afe656bb3c17256a9f6e9bf19fdd5a38fc82bbe872c5539edb609ef4f79c203ebb140f2e583cb2ad15b4aa5b655016a8"
            + "449277dbd477ef2c8d6c017db738b18deb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568";
    private static final String VECTOR_5_CIPHERTEXT =
            "264d3ca8512194fec312c8c9891f279fefdd608d0c027b60483a3fa811d65ee5"
            + "9d52d9e40ec5672d81532b38b6b089ce951f0f9c35590b8b978d175213f329bb1c2fd30f2f7f30492a61a532a79f51d3"
            + "6f5e31a7c9a12c286082ff7d2394d18f783e1a8e72c722caaaa52d8f065657d2631fd25bfd8e5baad6e527d763517501"
            + "c68c5edc3cdd55435c532d7125c8614deed9adaa3acade5888b87bef641c4c994c8091b5bcd387f3963fb5bc37aa922f"
            + "bfe3df4e5b915e6eb514717bdd2a74079a5073f5c4bfd46adf7d282e7a393a52579d11a028da4d9cd9c77124f9648ee3"
            + "83b1ac763930e7162a8d37f350b2f74b8472cf09902063c6b32e8c2d9290cefbd7346d1c779a0df50edcde4531da07b0"
            + "99c638e83a755944df2aef1aa31752fd323dcb710fb4bfbb9d22b925bc3577e1b8949e729a90bbafeacf7f7879e7b114"
            + "7e28ba0bae940db795a61b15ecf4df8db07b824bb062802cc98a9545bb2aaeed77cb3fc6db15dcd7d80d7d5bc406c497"
            + "0a3478ada8899b329198eb61c193fb6275aa8ca340344a75a862aebe92eee1ce032fd950b47d7704a3876923b4ad6284"
            + "4bf4a09c4dbe8b4397184b7471360c9564880aedddb9baa4af2e75394b08cd32ff479c57a07d3eab5d54de5f9738b8d2"
            + "7f27a9f0ab11799d7b7ffefb2704c95c6ad12c39f1e867a4b7b1d7818a4b753dfd2a89ccb45e001a03a867b187f225dd";
    private static final String VECTOR_10_CIPHERTEXT =
            "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
            + "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd5776926c49a3095eb108fd1098baec70"
            + "aaa66999a72a82f27d848b21d4a741b0c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
            + "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0b5781c34803fa75421c790dfe1de1834"
            + "f280d7667b327f6c8cd7557e12ac3a0f93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
            + "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a84e18e8f84252070c13e9f1f289be54f"
            + "bc481457778f616015e1327a02b140f1505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
            + "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29a9abc3d4d893927284c58754cce29452"
            + "9f8614dcd2aba991925fedc4ae74ffac6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
            + "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed43851ad77f16f541dfd269d50d6a5f14fb0a"
            + "ab1cbb4c1550be97f7ab4066193c4caa773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151";

    static Stream<Arguments> vectors() {
        return Stream.of(
                Arguments.of("1", "00000000000000000000000000000000" + "00000000000000000000000000000000", 0L,
                        "00".repeat(32), "917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e"),
                Arguments.of("2", "11111111111111111111111111111111" + "22222222222222222222222222222222",
                        0x3333333333L, "44".repeat(32),
                        "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0"),
                Arguments.of("3", "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0" + "22222222222222222222222222222222",
                        0x3333333333L, "44".repeat(32),
                        "af85336b597afc1a900b2eb21ec949d292df4c047e0b21532186a5971a227a89"),
                Arguments.of("4", "27182818284590452353602874713526" + "31415926535897932384626433832795", 0L,
                        COUNTING, VECTOR_4_CIPHERTEXT),
                Arguments.of("5", "27182818284590452353602874713526" + "31415926535897932384626433832795", 1L,
                        VECTOR_4_CIPHERTEXT, VECTOR_5_CIPHERTEXT),
                Arguments.of("10 (XTS-AES-256)",
                        "2718281828459045235360287471352662497757247093699959574966967627"
                                + "3141592653589793238462643383279502884197169399375105820974944592",
                        0xffL, COUNTING, VECTOR_10_CIPHERTEXT),
                Arguments.of("xts.7 #5", "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0" + "bfbebdbcbbbab9b8b7b6b5b4b3b2b1b0",
                        0x123456789aL, "44".repeat(32),
                        "b01f86f8edc1863706fa8a4253e34f28af319de38334870f4dd1f94cbe9832f1"));
    }

    /**
     * The 32-byte vectors are the start of a sector: without ciphertext stealing, XTS encrypts each 16-byte block
     * on its own, so the rest of the sector does not change them.
     */
    @ParameterizedTest(name = "vector {0}")
    @MethodSource("vectors")
    void ieeeVector(String name, String key, long sector, String plaintext, String ciphertext) throws Exception {
        SectorCipher cipher = xts(hex(key));
        byte[] sectorBytes = Arrays.copyOf(hex(plaintext), SectorCipher.SECTOR_SIZE);
        ByteBuffer data = ByteBuffer.wrap(sectorBytes);
        cipher.encrypt(sector, data);
        assertEquals(ciphertext, hex(Arrays.copyOf(sectorBytes, plaintext.length() / 2)));
        cipher.decrypt(sector, data);
        assertEquals(plaintext, hex(Arrays.copyOf(sectorBytes, plaintext.length() / 2)));
    }

    /** Vector 5 is vector 4's ciphertext as sector 1: one call over two sectors gives both. */
    @Test
    void twoSectorsInOneCallAreVectorsFourAndFive() throws Exception {
        SectorCipher cipher = xts(hex("27182818284590452353602874713526" + "31415926535897932384626433832795"));
        ByteBuffer data = ByteBuffer.wrap(hex(COUNTING + VECTOR_4_CIPHERTEXT));
        cipher.encrypt(0, data);
        assertEquals(VECTOR_4_CIPHERTEXT + VECTOR_5_CIPHERTEXT, hex(data.array()));
        cipher.decrypt(0, data);
        assertEquals(COUNTING + VECTOR_4_CIPHERTEXT, hex(data.array()));
    }

    private static SectorCipher xts(byte[] key) throws Exception {
        LuksCipher cipher = key.length == 32 ? LuksCipher.AES_128 : LuksCipher.AES_256;
        return SectorCipher.of(LuksFixtures.algorithms(cipher, LuksCipherMode.XTS, LuksIvGen.PLAIN64, null), key);
    }

    private static String counting() {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < 512; i++) {
            s.append(String.format("%02x", i & 0xff));
        }
        return s.toString();
    }
}
