package io.github.qcowloom.crypto;

import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.util.Arrays;
import java.util.concurrent.ArrayBlockingQueue;

/**
 * The cipher of a LUKS volume's payload and of its key material (or of an AES-encrypted qcow2 image's data,
 * {@link QcowAes}): 512-byte sectors encrypted in place, each with the IV of its sector number, as QEMU's
 * qcrypto_block_cipher_encrypt_helper runs them.
 *
 * <p>Thread-safe: any number of threads may encrypt and decrypt at once. JDK Cipher objects are not thread-safe,
 * so each call borrows a context of its own (ciphers, IV generator, scratch space) from a small pool and returns
 * it; when the pool is empty a new one is made, and a few per processor are kept. A pool rather than a
 * ThreadLocal: thousands of virtual threads would each keep a set of ciphers.
 */
public final class SectorCipher {
    /** Bytes per sector of the payload and of key material. */
    public static final int SECTOR_SIZE = 512;
    /** Sectors run through the JDK cipher per call: the size of each context's scratch space. */
    static final int CHUNK_SECTORS = 16;
    /** Contexts kept: a call never blocks, so about as many run at once as there are carrier threads. */
    static final int POOLED = Math.max(4, 2 * Runtime.getRuntime().availableProcessors());

    private final LuksAlgorithms algorithms;
    private final byte[] key;
    private final byte[] essivKey;
    private final ArrayBlockingQueue<Context> pool = new ArrayBlockingQueue<>(POOLED);

    private SectorCipher(LuksAlgorithms algorithms, byte[] key) {
        if (key.length != algorithms.masterKeyLength()) {
            throw new IllegalArgumentException("a " + key.length + "-byte key for " + algorithms + ", which takes "
                    + algorithms.masterKeyLength());
        }
        this.algorithms = algorithms;
        this.key = key.clone();
        // ESSIV keys its cipher with the hash of the whole key (both XTS halves), cut to that cipher's key length.
        this.essivKey = algorithms.mode().usesIv() && algorithms.ivgen() == LuksIvGen.ESSIV
                ? Arrays.copyOf(algorithms.ivgenHash().orElseThrow().newDigest().digest(key),
                        algorithms.ivgenCipher().keyLength())
                : null;
        // One context made now, as QEMU makes its cipher on open: a key the JDK refuses fails here, not mid-I/O.
        pool.add(newContext());
    }

    /** The cipher of a volume with {@code header}'s algorithms, keyed with its master key. */
    public static SectorCipher of(LuksHeader header, byte[] masterKey) {
        return of(header.algorithms(), masterKey);
    }

    /** The cipher of {@code algorithms} keyed with {@code key} (a master key, or a key slot's key). */
    public static SectorCipher of(LuksAlgorithms algorithms, byte[] key) {
        return new SectorCipher(algorithms, key);
    }

    /** The algorithms it runs. */
    public LuksAlgorithms algorithms() {
        return algorithms;
    }

    /**
     * Encrypts {@code data}'s remaining bytes in place, a whole number of sectors; the k-th sector takes the IV of
     * sector {@code firstSector + k}. Heap or direct; position and limit are left as they were.
     */
    public void encrypt(long firstSector, ByteBuffer data) {
        crypt(true, firstSector, data);
    }

    /** Decrypts in place what {@link #encrypt} encrypted with the same sector numbers. */
    public void decrypt(long firstSector, ByteBuffer data) {
        crypt(false, firstSector, data);
    }

    private void crypt(boolean encrypt, long firstSector, ByteBuffer data) {
        int length = data.remaining();
        if (length % SECTOR_SIZE != 0) {
            throw new IllegalArgumentException(length + " bytes are not whole " + SECTOR_SIZE + "-byte sectors");
        }
        if (data.isReadOnly()) {
            throw new ReadOnlyBufferException();
        }
        Context context = pool.poll();
        if (context == null) {
            context = newContext();
        }
        try {
            int position = data.position();
            for (int done = 0; done < length; ) {
                int sectors = Math.min(CHUNK_SECTORS, (length - done) / SECTOR_SIZE);
                int bytes = sectors * SECTOR_SIZE;
                long sector = firstSector + done / SECTOR_SIZE;
                if (data.hasArray()) {
                    context.crypt(encrypt, sector, data.array(), data.arrayOffset() + position + done, sectors);
                } else {
                    data.get(position + done, context.scratch, 0, bytes);
                    context.crypt(encrypt, sector, context.scratch, 0, sectors);
                    data.put(position + done, context.scratch, 0, bytes);
                }
                done += bytes;
            }
        } finally {
            pool.offer(context);
        }
    }

    private Context newContext() {
        SectorIvs ivs = algorithms.mode().usesIv() ? new SectorIvs(algorithms.ivgen(), essivKey) : null;
        return new Context(SectorMode.of(algorithms.mode(), key), ivs, new byte[CHUNK_SECTORS * Aes.BLOCK],
                new byte[CHUNK_SECTORS * SECTOR_SIZE]);
    }

    /** One call's ciphers and scratch space: used by one thread at a time, then pooled. */
    private record Context(SectorMode mode, SectorIvs ivs, byte[] ivBuffer, byte[] scratch) {
        void crypt(boolean encrypt, long firstSector, byte[] buf, int offset, int sectors) {
            if (ivs != null) {
                ivs.fill(firstSector, sectors, ivBuffer);
            }
            mode.crypt(encrypt, buf, offset, sectors, ivBuffer);
        }
    }
}
