package io.github.qcowloom.crypto;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.ReadOnlyBufferException;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import javax.crypto.Cipher;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The sector cipher's IVs and modes against the JDK's own CBC and ECB with IVs computed here as QEMU's
 * generators define them, across buffer kinds, and under many virtual threads at once.
 */
class SectorCipherTest {
    private static final int SECTOR = SectorCipher.SECTOR_SIZE;

    @Test
    void cbcPlain64ChainsEachSectorFromItsNumber() throws Exception {
        byte[] key = LuksFixtures.random(16);
        byte[] plaintext = LuksFixtures.random(3 * SECTOR);
        long first = 0xFFFF_FFFEL;
        byte[] expected = new byte[plaintext.length];
        for (int k = 0; k < 3; k++) {
            byte[] iv = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(0, first + k).array();
            jdk("AES/CBC/NoPadding", key, iv).doFinal(plaintext, k * SECTOR, SECTOR, expected, k * SECTOR);
        }
        SectorCipher cipher = cipher(LuksCipher.AES_128, LuksCipherMode.CBC, LuksIvGen.PLAIN64, null, key);
        assertArrayEquals(expected, encrypted(cipher, first, plaintext));
        ByteBuffer back = ByteBuffer.wrap(expected.clone());
        cipher.decrypt(first, back);
        assertArrayEquals(plaintext, back.array());
    }

    @Test
    void plainKeepsTheLow32BitsOfTheSectorAndPlain64All() throws Exception {
        byte[] key = LuksFixtures.random(32);
        byte[] plaintext = LuksFixtures.random(SECTOR);
        SectorCipher plain = cipher(LuksCipher.AES_256, LuksCipherMode.CBC, LuksIvGen.PLAIN, null, key);
        SectorCipher plain64 = cipher(LuksCipher.AES_256, LuksCipherMode.CBC, LuksIvGen.PLAIN64, null, key);
        assertArrayEquals(encrypted(plain, 5, plaintext), encrypted(plain, (1L << 32) + 5, plaintext));
        assertArrayEquals(encrypted(plain, 5, plaintext), encrypted(plain64, 5, plaintext));
        assertFalse(Arrays.equals(encrypted(plain64, 5, plaintext), encrypted(plain64, (1L << 32) + 5, plaintext)));
    }

    /** AES-128 data, sha256 ESSIV: the IV cipher is AES-256, keyed with the whole digest (dm-crypt's quirk). */
    @Test
    void essivEncryptsThePlain64BlockUnderTheKeysHash() throws Exception {
        byte[] key = LuksFixtures.random(16);
        byte[] plaintext = LuksFixtures.random(2 * SECTOR);
        byte[] essivKey = MessageDigest.getInstance("SHA-256").digest(key);
        byte[] expected = new byte[plaintext.length];
        for (int k = 0; k < 2; k++) {
            byte[] block = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 77 + k).array();
            byte[] iv = jdk("AES/ECB/NoPadding", essivKey, null).doFinal(block);
            jdk("AES/CBC/NoPadding", key, iv).doFinal(plaintext, k * SECTOR, SECTOR, expected, k * SECTOR);
        }
        SectorCipher cipher = cipher(LuksCipher.AES_128, LuksCipherMode.CBC, LuksIvGen.ESSIV, LuksHash.SHA256, key);
        assertEquals(LuksCipher.AES_256, cipher.algorithms().ivgenCipher());
        assertArrayEquals(expected, encrypted(cipher, 77, plaintext));
    }

    /** With XTS the ESSIV hash covers both halves of the key, and its output is the XTS tweak input. */
    @Test
    void essivWithXtsHashesTheWholeKey() throws Exception {
        byte[] key = LuksFixtures.random(32);
        byte[] md5Key = MessageDigest.getInstance("MD5").digest(key);
        byte[] block = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 9).array();
        byte[] iv = jdk("AES/ECB/NoPadding", md5Key, null).doFinal(block);
        // The first block by hand: T = E_K2(IV), C = E_K1(P ^ T) ^ T.
        byte[] t = jdk("AES/ECB/NoPadding", Arrays.copyOfRange(key, 16, 32), null).doFinal(iv);
        byte[] plaintext = LuksFixtures.random(SECTOR);
        byte[] first = new byte[16];
        for (int i = 0; i < 16; i++) {
            first[i] = (byte) (plaintext[i] ^ t[i]);
        }
        byte[] c = jdk("AES/ECB/NoPadding", Arrays.copyOf(key, 16), null).doFinal(first);
        for (int i = 0; i < 16; i++) {
            c[i] ^= t[i];
        }
        SectorCipher cipher = cipher(LuksCipher.AES_128, LuksCipherMode.XTS, LuksIvGen.ESSIV, LuksHash.MD5, key);
        assertEquals(LuksCipher.AES_128, cipher.algorithms().ivgenCipher());
        assertArrayEquals(c, Arrays.copyOf(encrypted(cipher, 9, plaintext), 16));
    }

    @Test
    void ecbTakesNoIv() throws Exception {
        byte[] key = LuksFixtures.random(16);
        byte[] plaintext = LuksFixtures.random(40 * SECTOR);
        SectorCipher cipher = cipher(LuksCipher.AES_128, LuksCipherMode.ECB, LuksIvGen.PLAIN64, null, key);
        byte[] expected = jdk("AES/ECB/NoPadding", key, null).doFinal(plaintext);
        assertArrayEquals(expected, encrypted(cipher, 0, plaintext));
        assertArrayEquals(expected, encrypted(cipher, 12345, plaintext));
    }

    /** Heap, heap at an offset, direct: the same bytes out, the bytes around untouched, position and limit kept. */
    @ParameterizedTest
    @EnumSource(names = {"ECB", "CBC", "XTS"})
    void everyBufferKindGivesTheSameBytes(LuksCipherMode mode) throws Exception {
        byte[] key = LuksFixtures.random(mode.masterKeyLength(32));
        SectorCipher cipher = cipher(LuksCipher.AES_256, mode, LuksIvGen.PLAIN64, null, key);
        byte[] plaintext = LuksFixtures.random(20 * SECTOR);
        byte[] expected = encrypted(cipher, 3, plaintext);
        for (boolean direct : new boolean[] {false, true}) {
            ByteBuffer whole = direct ? ByteBuffer.allocateDirect(plaintext.length + 14)
                    : ByteBuffer.allocate(plaintext.length + 14);
            whole.put(7, plaintext);
            ByteBuffer data = whole.slice(3, plaintext.length + 8).position(4).limit(4 + plaintext.length);
            cipher.encrypt(3, data);
            assertEquals(4, data.position());
            assertEquals(4 + plaintext.length, data.limit());
            byte[] out = new byte[plaintext.length + 14];
            whole.get(0, out);
            assertArrayEquals(new byte[7], Arrays.copyOf(out, 7), "bytes before");
            assertArrayEquals(new byte[7], Arrays.copyOfRange(out, out.length - 7, out.length), "bytes after");
            assertArrayEquals(expected, Arrays.copyOfRange(out, 7, 7 + plaintext.length), "direct " + direct);
            cipher.decrypt(3, data);
            whole.get(7, out, 0, plaintext.length);
            assertArrayEquals(plaintext, Arrays.copyOf(out, plaintext.length));
        }
    }

    @Test
    void partialSectorsReadOnlyBuffersAndWrongKeysAreRefused() throws Exception {
        SectorCipher cipher = cipher(LuksCipher.AES_128, LuksCipherMode.XTS, LuksIvGen.PLAIN64, null,
                new byte[32]);
        assertThrows(IllegalArgumentException.class, () -> cipher.encrypt(0, ByteBuffer.allocate(SECTOR + 16)));
        assertThrows(ReadOnlyBufferException.class,
                () -> cipher.encrypt(0, ByteBuffer.allocate(SECTOR).asReadOnlyBuffer()));
        assertThrows(IllegalArgumentException.class, () -> SectorCipher.of(cipher.algorithms(), new byte[16]));
    }

    /** Far more virtual threads than pooled contexts, each with its own data: every result as if alone. */
    @Test
    void manyVirtualThreadsAtOnce() throws Exception {
        byte[] key = LuksFixtures.random(64);
        SectorCipher cipher = cipher(LuksCipher.AES_256, LuksCipherMode.XTS, LuksIvGen.ESSIV, LuksHash.SHA256, key);
        SectorCipher alone = cipher(LuksCipher.AES_256, LuksCipherMode.XTS, LuksIvGen.ESSIV, LuksHash.SHA256, key);
        int tasks = 2000;
        List<byte[]> inputs = new ArrayList<>();
        for (int i = 0; i < tasks; i++) {
            inputs.add(LuksFixtures.random((1 + i % 24) * SECTOR));
        }
        List<Future<byte[]>> results = new ArrayList<>();
        try (var executor = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int i = 0; i < tasks; i++) {
                byte[] input = inputs.get(i);
                long sector = i * 1000L;
                results.add(executor.submit(() -> {
                    ByteBuffer data = ByteBuffer.wrap(input.clone());
                    cipher.encrypt(sector, data);
                    Thread.yield();
                    byte[] out = data.array().clone();
                    cipher.decrypt(sector, data);
                    assertArrayEquals(input, data.array());
                    return out;
                }));
            }
        }
        for (int i = 0; i < tasks; i++) {
            assertArrayEquals(encrypted(alone, i * 1000L, inputs.get(i)), results.get(i).get(), "task " + i);
        }
    }

    static SectorCipher cipher(LuksCipher aes, LuksCipherMode mode, LuksIvGen ivgen, LuksHash ivgenHash, byte[] key)
            throws Exception {
        return SectorCipher.of(LuksFixtures.algorithms(aes, mode, ivgen, ivgenHash), key);
    }

    static byte[] encrypted(SectorCipher cipher, long firstSector, byte[] plaintext) {
        ByteBuffer data = ByteBuffer.wrap(plaintext.clone());
        cipher.encrypt(firstSector, data);
        return data.array();
    }

    private static Cipher jdk(String transformation, byte[] key, byte[] iv) throws Exception {
        Cipher cipher = Cipher.getInstance(transformation);
        cipher.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(key, "AES"), iv == null ? null : new IvParameterSpec(iv));
        return cipher;
    }
}
