package io.github.qcowloom.crypto;

import java.security.DigestException;
import java.security.MessageDigest;
import java.util.Arrays;

/**
 * HMAC (RFC 2104) with the key's two padded blocks hashed once: each use clones the digests that absorbed them, so
 * a PBKDF2 round of a short message costs two compressions instead of the four of {@link javax.crypto.Mac}, which
 * hashes the inner pad again after every result. PBKDF2 runs millions of rounds to unlock a key slot, so this
 * halves the time an encrypted image takes to open. One per thread: it keeps state between calls.
 */
final class PrecomputedHmac {
    private final MessageDigest inner;
    private final MessageDigest outer;
    private final byte[] innerHash;

    PrecomputedHmac(LuksHash hash, byte[] key) {
        MessageDigest digest = hash.newDigest();
        // MD5 to SHA-256 take 64-byte blocks, SHA-384 and SHA-512 128-byte ones.
        int block = hash.digestLength() > 32 ? 128 : 64;
        byte[] padded = new byte[block];
        byte[] k = key.length > block ? digest.digest(key) : key;
        System.arraycopy(k, 0, padded, 0, k.length);
        inner = hash.newDigest();
        outer = hash.newDigest();
        for (int i = 0; i < block; i++) {
            inner.update((byte) (padded[i] ^ 0x36));
            outer.update((byte) (padded[i] ^ 0x5c));
        }
        Arrays.fill(padded, (byte) 0); // the key (a passphrase, or a master key being checked)
        if (k != key) {
            Arrays.fill(k, (byte) 0);
        }
        innerHash = new byte[hash.digestLength()];
    }

    /** HMAC of {@code first} then {@code second} (which may be null) into {@code out}, digest-long. */
    void mac(byte[] first, byte[] second, byte[] out) {
        try {
            MessageDigest in = (MessageDigest) inner.clone();
            in.update(first);
            if (second != null) {
                in.update(second);
            }
            in.digest(innerHash, 0, innerHash.length);
            MessageDigest out2 = (MessageDigest) outer.clone();
            out2.update(innerHash);
            out2.digest(out, 0, out.length);
        } catch (CloneNotSupportedException | DigestException e) {
            throw new IllegalStateException("the JDK's " + inner.getAlgorithm() + " cannot be cloned", e);
        }
    }
}
