package io.github.qcowloom.crypto;

import java.util.Arrays;

/**
 * The AES encryption of qcow2 images before LUKS (crypt_method 1), which QEMU's crypto/block-qcow.c keeps so that
 * data can be taken out of old images: AES-128 in CBC mode over 512-byte sectors, each sector's IV its number
 * (plain64), keyed with the passphrase itself. There is no header and no key check: a wrong passphrase reads as
 * noise, as in QEMU. Which sector number an IV takes is the image's to say (qcow2 numbers them by guest offset).
 */
public final class QcowAes {
    /** Bytes of the key: the passphrase's first 16, zero-padded. */
    static final int KEY_LENGTH = 16;
    private static final LuksAlgorithms ALGORITHMS = LuksAlgorithms.qcowAes();

    private QcowAes() {
    }

    /**
     * The cipher of {@code passphrase}, keyed as qcrypto_block_qcow_init keys it: its bytes up to the first NUL
     * (strlen), at most 16, then zeroes.
     */
    public static SectorCipher cipher(byte[] passphrase) {
        byte[] key = new byte[KEY_LENGTH];
        for (int i = 0; i < KEY_LENGTH && i < passphrase.length && passphrase[i] != 0; i++) {
            key[i] = passphrase[i];
        }
        try {
            return SectorCipher.of(ALGORITHMS, key);
        } finally {
            Arrays.fill(key, (byte) 0);
        }
    }
}
