package io.github.qcowloom.crypto;

import javax.crypto.Cipher;

/** ECB over sectors: no IV, so a whole run of sectors in one call. One thread at a time. */
final class EcbSectors implements SectorMode {
    private final Cipher encrypt;
    private final Cipher decrypt;

    EcbSectors(byte[] key) {
        encrypt = Aes.ecb(Cipher.ENCRYPT_MODE, key, 0, key.length);
        decrypt = Aes.ecb(Cipher.DECRYPT_MODE, key, 0, key.length);
    }

    @Override
    public void crypt(boolean encrypt, byte[] buf, int offset, int sectors, byte[] ivs) {
        Aes.run(encrypt ? this.encrypt : decrypt, buf, offset, sectors * SectorCipher.SECTOR_SIZE);
    }
}
