package io.github.qcowloom.crypto;

import java.security.DigestException;
import java.security.MessageDigest;
import java.security.SecureRandom;

/**
 * The LUKS anti-forensic splitter (QEMU's crypto/afsplit.c, after cryptsetup): a key is stored as many random
 * stripes chained through a hash, so that erasing any part of them loses the key for good. Stateless: safe from
 * any thread.
 */
public final class AfSplitter {
    private AfSplitter() {}

    /**
     * Splits {@code in} ({@code blockLength} bytes) into {@code stripes} stripes: all random but the last, which is
     * {@code in} XOR the diffused chain of the others.
     */
    public static byte[] encode(LuksHash hash, int blockLength, int stripes, byte[] in, SecureRandom random) {
        checkShape(blockLength, stripes, in.length, blockLength);
        byte[] out = new byte[Math.multiplyExact(blockLength, stripes)];
        random.nextBytes(out);
        byte[] block = chain(hash, out, blockLength, stripes - 1);
        int last = (stripes - 1) * blockLength;
        for (int i = 0; i < blockLength; i++) {
            out[last + i] = (byte) (in[i] ^ block[i]);
        }
        return out;
    }

    /** Joins the {@code stripes} stripes of {@code in} back into the {@code blockLength} bytes they split. */
    public static byte[] decode(LuksHash hash, int blockLength, int stripes, byte[] in) {
        checkShape(blockLength, stripes, in.length, Math.multiplyExact(blockLength, stripes));
        byte[] block = chain(hash, in, blockLength, stripes - 1);
        int last = (stripes - 1) * blockLength;
        for (int i = 0; i < blockLength; i++) {
            block[i] ^= in[last + i];
        }
        return block;
    }

    /** XORs each of the first {@code count} stripes into a zero block, diffusing it after each. */
    private static byte[] chain(LuksHash hash, byte[] stripes, int blockLength, int count) {
        MessageDigest digest = hash.newDigest();
        byte[] block = new byte[blockLength];
        for (int s = 0; s < count; s++) {
            int at = s * blockLength;
            for (int i = 0; i < blockLength; i++) {
                block[i] ^= stripes[at + i];
            }
            diffuse(digest, block);
        }
        return block;
    }

    /**
     * Replaces each digest-sized part of {@code block} (the last maybe shorter) with the start of the hash of its
     * big-endian index followed by the part (QEMU's qcrypto_afsplit_hash).
     */
    static void diffuse(MessageDigest digest, byte[] block) {
        int digestLength = digest.getDigestLength();
        byte[] out = new byte[digestLength];
        try {
            for (int i = 0, at = 0; at < block.length; i++, at += digestLength) {
                int part = Math.min(digestLength, block.length - at);
                digest.update(new byte[] {(byte) (i >>> 24), (byte) (i >>> 16), (byte) (i >>> 8), (byte) i});
                digest.update(block, at, part);
                digest.digest(out, 0, digestLength);
                System.arraycopy(out, 0, block, at, part);
            }
        } catch (DigestException e) {
            throw new IllegalStateException("a digest-sized buffer was too short", e);
        }
    }

    private static void checkShape(int blockLength, int stripes, int inLength, int expected) {
        if (blockLength < 1 || stripes < 1 || inLength != expected) {
            throw new IllegalArgumentException(inLength + " bytes in, " + stripes + " stripes of " + blockLength
                    + " bytes");
        }
    }
}
