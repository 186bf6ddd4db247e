package io.github.qcowloom.crypto;

import javax.crypto.Cipher;

/**
 * CBC over sectors, each chained from its own IV. The ciphers are keyed once with a zero IV and never re-initialised:
 * XORing the IV into the first plaintext block before encrypting (or into the first output block after decrypting)
 * is CBC with that IV, and a JDK cipher returns to its zero IV after each doFinal. One thread at a time.
 */
final class CbcSectors implements SectorMode {
    private final Cipher encrypt;
    private final Cipher decrypt;

    CbcSectors(byte[] key) {
        encrypt = Aes.cbc(Cipher.ENCRYPT_MODE, key);
        decrypt = Aes.cbc(Cipher.DECRYPT_MODE, key);
    }

    @Override
    public void crypt(boolean encrypt, byte[] buf, int offset, int sectors, byte[] ivs) {
        for (int s = 0; s < sectors; s++) {
            int at = offset + s * SectorCipher.SECTOR_SIZE;
            if (encrypt) {
                xorIv(buf, at, ivs, s);
                Aes.run(this.encrypt, buf, at, SectorCipher.SECTOR_SIZE);
            } else {
                Aes.run(decrypt, buf, at, SectorCipher.SECTOR_SIZE);
                xorIv(buf, at, ivs, s);
            }
        }
    }

    private static void xorIv(byte[] buf, int at, byte[] ivs, int sector) {
        for (int i = 0; i < Aes.BLOCK; i++) {
            buf[at + i] ^= ivs[sector * Aes.BLOCK + i];
        }
    }
}
