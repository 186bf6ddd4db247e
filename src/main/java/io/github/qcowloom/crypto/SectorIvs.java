package io.github.qcowloom.crypto;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.Arrays;
import javax.crypto.Cipher;

/**
 * Sector IVs as QEMU's IV generators make them (crypto/ivgen-*.c), 16 bytes each: plain is the sector's low 32 bits
 * little endian, plain64 all 64, and essiv the plain64 block encrypted with a hash of the data key. Holds the
 * ESSIV cipher, which is not thread-safe: one thread at a time.
 */
final class SectorIvs {
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class,
            ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle INTS = MethodHandles.byteArrayViewVarHandle(int[].class,
            ByteOrder.LITTLE_ENDIAN);

    private final LuksIvGen ivgen;
    private final Cipher essiv;

    /** {@code essivKey}: the ESSIV cipher's key, for essiv only (null otherwise). */
    SectorIvs(LuksIvGen ivgen, byte[] essivKey) {
        this.ivgen = ivgen;
        this.essiv = essivKey == null ? null : Aes.ecb(Cipher.ENCRYPT_MODE, essivKey, 0, essivKey.length);
    }

    /** Writes the IVs of {@code count} sectors from {@code firstSector} into {@code ivs}, one after another. */
    void fill(long firstSector, int count, byte[] ivs) {
        Arrays.fill(ivs, 0, count * Aes.BLOCK, (byte) 0);
        for (int k = 0; k < count; k++) {
            long sector = firstSector + k;
            if (ivgen == LuksIvGen.PLAIN) {
                INTS.set(ivs, k * Aes.BLOCK, (int) sector);
            } else {
                LONGS.set(ivs, k * Aes.BLOCK, sector);
            }
        }
        if (essiv != null) {
            Aes.run(essiv, ivs, 0, count * Aes.BLOCK);
        }
    }
}
