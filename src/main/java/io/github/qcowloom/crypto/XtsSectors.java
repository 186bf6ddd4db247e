package io.github.qcowloom.crypto;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import javax.crypto.Cipher;

/**
 * XTS-AES (IEEE 1619) over 512-byte data units, which the JDK lacks, built on its AES/ECB. The key is K1 (data) then
 * K2 (tweak); a sector's tweak starts as E_K2(IV) and is multiplied by alpha in GF(2^128) from block to block. Each
 * block is P xor T encrypted, xor T again; so a run of sectors is one XOR pass, one ECB call, one XOR pass, rather
 * than a cipher call per 16 bytes. No ciphertext stealing: sectors are whole blocks. One thread at a time.
 */
final class XtsSectors implements SectorMode {
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class,
            ByteOrder.LITTLE_ENDIAN);
    private static final int BLOCKS = SectorCipher.SECTOR_SIZE / Aes.BLOCK;
    /** x^128 = x^7 + x^2 + x + 1: what the bit shifted out of the top comes back as. */
    private static final long FEEDBACK = 0x87;

    private final Cipher encrypt;
    private final Cipher decrypt;
    private final Cipher tweak;
    /** Each block's tweak as two little-endian longs, low then high, for as many sectors as SectorCipher runs. */
    private final long[] tweaks = new long[2 * BLOCKS * SectorCipher.CHUNK_SECTORS];

    XtsSectors(byte[] key) {
        int half = key.length / 2;
        encrypt = Aes.ecb(Cipher.ENCRYPT_MODE, key, 0, half);
        decrypt = Aes.ecb(Cipher.DECRYPT_MODE, key, 0, half);
        tweak = Aes.ecb(Cipher.ENCRYPT_MODE, key, half, half);
    }

    @Override
    public void crypt(boolean encrypt, byte[] buf, int offset, int sectors, byte[] ivs) {
        Aes.run(tweak, ivs, 0, sectors * Aes.BLOCK);
        int n = 0;
        for (int s = 0; s < sectors; s++) {
            long lo = (long) LONGS.get(ivs, s * Aes.BLOCK);
            long hi = (long) LONGS.get(ivs, s * Aes.BLOCK + 8);
            for (int j = 0; j < BLOCKS; j++) {
                tweaks[n++] = lo;
                tweaks[n++] = hi;
                // Times alpha: the 128-bit little-endian number shifted left one bit, the carry folded back in.
                long carry = (hi >> 63) & FEEDBACK;
                hi = (hi << 1) | (lo >>> 63);
                lo = (lo << 1) ^ carry;
            }
        }
        int length = sectors * SectorCipher.SECTOR_SIZE;
        xorTweaks(buf, offset, length);
        Aes.run(encrypt ? this.encrypt : decrypt, buf, offset, length);
        xorTweaks(buf, offset, length);
    }

    private void xorTweaks(byte[] buf, int offset, int length) {
        for (int i = 0, t = 0; i < length; i += 8, t++) {
            LONGS.set(buf, offset + i, (long) LONGS.get(buf, offset + i) ^ tweaks[t]);
        }
    }
}
