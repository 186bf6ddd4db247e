package io.github.qcowloom.crypto;

import java.security.GeneralSecurityException;
import javax.crypto.Cipher;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * The JDK's AES, keyed once and run in place over whole blocks. Every JDK has AES, and the keys reaching here have
 * been checked, so its checked exceptions cannot happen and come out unchecked.
 */
final class Aes {
    static final int BLOCK = 16;

    private Aes() {}

    /** AES/ECB keyed with {@code length} bytes of {@code key} from {@code offset}. */
    static Cipher ecb(int opmode, byte[] key, int offset, int length) {
        return cipher("AES/ECB/NoPadding", opmode, key, offset, length, null);
    }

    /** AES/CBC keyed with {@code key}, IV zero. */
    static Cipher cbc(int opmode, byte[] key) {
        return cipher("AES/CBC/NoPadding", opmode, key, 0, key.length, new IvParameterSpec(new byte[BLOCK]));
    }

    /** Runs {@code cipher} over {@code length} bytes of {@code buf} in place; the cipher is ready again after. */
    static void run(Cipher cipher, byte[] buf, int offset, int length) {
        try {
            cipher.doFinal(buf, offset, length, buf, offset);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES over " + length + " bytes", e);
        }
    }

    private static Cipher cipher(String transformation, int opmode, byte[] key, int offset, int length,
            IvParameterSpec iv) {
        try {
            Cipher cipher = Cipher.getInstance(transformation);
            cipher.init(opmode, new SecretKeySpec(key, offset, length, "AES"), iv);
            return cipher;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(transformation + " with a " + length + "-byte key", e);
        }
    }
}
