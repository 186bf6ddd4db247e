package io.github.qcowloom.crypto;

import io.github.qcowloom.api.EncryptionKeyException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;

/**
 * Opening and making LUKS volumes as QEMU does (qcrypto_block_luks_open's key search, qcrypto_block_luks_create):
 * a password unlocks the master key from a key slot, and a new volume gets a random master key stored in slot 0.
 * Stateless: safe from any thread.
 */
public final class LuksFormat {
    private static final int MIN_ITERATIONS = 1000;
    /** The strerror of ERANGE, which QEMU appends to its iteration count errors. */
    private static final String ERANGE = ": Numerical result out of range";

    private LuksFormat() {}

    /**
     * A new volume's header area and master key.
     *
     * @param header the header, its slot 0 enabled
     * @param headerArea the whole area before the payload ({@link LuksHeader#payloadOffset()} bytes): the header at
     *     0, slot 0's encrypted key material at its offset, zeroes elsewhere; the caller's to write and keep
     * @param masterKey the key of the payload; the caller's
     * @param cipher the payload's cipher under that key
     */
    public record Created(LuksHeader header, byte[] headerArea, byte[] masterKey, SectorCipher cipher) {
    }

    /**
     * The master key that {@code password} unlocks: each enabled slot in turn derives a key from the password,
     * decrypts its key material with it and merges the stripes; the right password gives the key whose digest the
     * header holds. As QEMU, only up to the password's first NUL counts.
     */
    public static byte[] unlock(LuksHeader header, KeyMaterialReader reader, byte[] password) throws IOException {
        requireBoundedWork(unlockRounds(header));
        byte[] secret = uptoNul(password);
        try {
            for (int i = 0; i < LuksHeader.SLOT_COUNT; i++) {
                byte[] masterKey = tryKeySlot(header, reader, secret, i);
                if (masterKey != null) {
                    return masterKey;
                }
            }
        } finally {
            if (secret != password) { // a copy cut at a NUL: the caller wipes only its own
                Arrays.fill(secret, (byte) 0);
            }
        }
        throw new EncryptionKeyException("Invalid password, cannot unlock any keyslot");
    }

    /**
     * The master key that {@code password} unlocks from key slot {@code index} alone, or null where the slot is
     * disabled or the password is not its own (QEMU's qcrypto_block_luks_load_key).
     */
    public static byte[] unlockSlot(LuksHeader header, KeyMaterialReader reader, byte[] password, int index)
            throws IOException {
        LuksHeader.KeySlot slot = header.keySlots().get(index);
        if (slot.active()) {
            requireBoundedWork(slotRounds(header.algorithms().hash(), header.masterKeyLength(), slot.iterations(),
                    header.masterKeyIterations()));
        }
        byte[] secret = uptoNul(password);
        try {
            return tryKeySlot(header, reader, secret, index);
        } finally {
            if (secret != password) {
                Arrays.fill(secret, (byte) 0);
            }
        }
    }

    /** Slot {@code index}'s master key under {@code secret} (a password up to its NUL), or null. */
    private static byte[] tryKeySlot(LuksHeader header, KeyMaterialReader reader, byte[] secret, int index)
            throws IOException {
        LuksHeader.KeySlot slot = header.keySlots().get(index);
        if (!slot.active()) {
            return null;
        }
        LuksAlgorithms algorithms = header.algorithms();
        LuksHash hash = algorithms.hash();
        int keyLength = header.masterKeyLength();
        byte[] possibleKey = Pbkdf2.derive(hash, secret, slot.salt(), slot.iterations(), keyLength);
        // A parsed header's slots have 4000 stripes, so this is keyLength * 4000 bytes, whole sectors.
        byte[] keyMaterial = new byte[Math.multiplyExact(keyLength, (int) slot.stripes())];
        try {
            reader.read(slot.keyOffset(), keyMaterial);
            SectorCipher.of(algorithms, possibleKey).decrypt(0, ByteBuffer.wrap(keyMaterial));
            byte[] masterKey = AfSplitter.decode(hash, keyLength, (int) slot.stripes(), keyMaterial);
            byte[] digest = Pbkdf2.derive(hash, masterKey, header.masterKeySalt(), header.masterKeyIterations(),
                    LuksHeader.DIGEST_LENGTH);
            if (MessageDigest.isEqual(digest, header.masterKeyDigest())) {
                return masterKey;
            }
            Arrays.fill(masterKey, (byte) 0);
            return null;
        } finally { // what a slot decrypts is the master key, split: wiped, as the slot's key
            Arrays.fill(keyMaterial, (byte) 0);
            Arrays.fill(possibleKey, (byte) 0);
        }
    }

    /**
     * Most HMAC rounds an unlock may run, over every key slot it could try: 2^28, about two minutes here, several
     * times what an image qemu-img made with its default 2 s of PBKDF2 on a fast machine asks, eight slots tried.
     * The header's counts are u32 per slot: a hostile image could otherwise hold an open for hours, which QEMU
     * allows.
     */
    static final long MAX_ROUNDS = 1L << 28;

    /**
     * The HMAC rounds {@link #unlock} may run on {@code header} before it refuses a password: each active slot's key,
     * then the master key's digest. Above 2^28 unlock refuses the header without running any.
     */
    public static long unlockRounds(LuksHeader header) {
        long rounds = 0;
        for (LuksHeader.KeySlot slot : header.keySlots()) {
            if (slot.active()) { // u32 counts times a few blocks, eight times: no overflow
                rounds += slotRounds(header.algorithms().hash(), header.masterKeyLength(), slot.iterations(),
                        header.masterKeyIterations());
            }
        }
        return rounds;
    }

    /**
     * The HMAC rounds of trying one slot: its key derived ({@code keyLength} bytes, in whole digests), then the
     * master key's digest.
     */
    private static long slotRounds(LuksHash hash, int keyLength, long slotIterations, long masterKeyIterations) {
        return slotIterations * Math.ceilDiv(keyLength, hash.digestLength())
                + masterKeyIterations * Math.ceilDiv(LuksHeader.DIGEST_LENGTH, hash.digestLength());
    }

    static void requireBoundedWork(long rounds) throws UnsupportedFeatureException {
        if (rounds > MAX_ROUNDS) {
            throw new UnsupportedFeatureException("PBKDF2 work above " + MAX_ROUNDS + " rounds",
                    "The LUKS header's key slots ask for " + rounds + " PBKDF2 rounds to try; at most " + MAX_ROUNDS
                            + " are run");
        }
    }

    /** {@link #create(LuksOptions, byte[], SecureRandom, Pbkdf2.Rate)} timing PBKDF2 as QEMU does. */
    public static Created create(LuksOptions options, byte[] password, SecureRandom random) throws ImageException {
        return create(options, password, random, Pbkdf2::iterationsPerSecond);
    }

    /**
     * A new volume as qcrypto_block_luks_create makes it: a random master key and salt, the master key digest
     * with {@code rate}'s iterations per second scaled to an eighth of iter-time, all eight slots laid out after
     * the 4096-byte header with 4000 stripes each, and slot 0 holding the master key under {@code password}
     * (up to its first NUL) with iterations for the whole iter-time.
     */
    public static Created create(LuksOptions options, byte[] password, SecureRandom random, Pbkdf2.Rate rate)
            throws ImageException {
        LuksAlgorithms algorithms = LuksAlgorithms.forCreate(options);
        LuksHash hash = algorithms.hash();
        int keyLength = algorithms.masterKeyLength();
        byte[] secret = uptoNul(password);

        byte[] masterKeySalt = randomBytes(random, LuksHeader.SALT_LENGTH);
        byte[] masterKey = randomBytes(random, keyLength);
        // Why an eighth? cryptsetup's choice, QEMU says: eight slots checked within iter-time.
        long masterKeyIterations = iterations(rate.iterationsPerSecond(hash, LuksHeader.DIGEST_LENGTH),
                options.iterTimeMillis(), 8);
        byte[] digest = Pbkdf2.derive(hash, masterKey, masterKeySalt, masterKeyIterations, LuksHeader.DIGEST_LENGTH);

        long slotSectors = LuksHeader.keyMaterialSectors(keyLength, LuksHeader.STRIPES);
        byte[] slotSalt = randomBytes(random, LuksHeader.SALT_LENGTH);
        long slotIterations = iterations(rate.iterationsPerSecond(hash, keyLength), options.iterTimeMillis(), 1);
        // A long iter-time: a volume no open here would unlock, refused before its slot key is derived.
        requireBoundedWork(slotRounds(hash, keyLength, slotIterations, masterKeyIterations));
        byte[] keyMaterial = sealedKeyMaterial(algorithms, secret, slotSalt, slotIterations, masterKey, random);

        List<LuksHeader.KeySlot> slots = new ArrayList<>();
        for (int i = 0; i < LuksHeader.SLOT_COUNT; i++) {
            long offset = LuksHeader.HEADER_SECTORS + i * slotSectors;
            slots.add(i == 0 ? LuksHeader.KeySlot.enabled(slotIterations, slotSalt, offset)
                    : LuksHeader.KeySlot.disabled(offset));
        }
        long payloadOffsetSector = payloadOffsetSector(keyLength);
        LuksHeader header = new LuksHeader(algorithms, payloadOffsetSector, digest, masterKeySalt,
                masterKeyIterations, uuid(random), slots);

        byte[] area = new byte[Math.toIntExact(header.payloadOffset())];
        System.arraycopy(header.toBytes(), 0, area, 0, LuksHeader.SIZE);
        System.arraycopy(keyMaterial, 0, area, Math.toIntExact(slots.get(0).keyOffset()), keyMaterial.length);
        return new Created(header, area, masterKey, SectorCipher.of(algorithms, masterKey));
    }

    /**
     * A key slot's material (QEMU's qcrypto_block_luks_store_key): {@code masterKey} split into 4000 stripes and
     * encrypted under the key {@code secret} (a password up to its NUL) derives with {@code salt} and {@code
     * iterations}, sector IVs from 0.
     */
    static byte[] sealedKeyMaterial(LuksAlgorithms algorithms, byte[] secret, byte[] salt, long iterations,
            byte[] masterKey, SecureRandom random) {
        int keyLength = algorithms.masterKeyLength();
        byte[] slotKey = Pbkdf2.derive(algorithms.hash(), secret, salt, iterations, keyLength);
        try {
            byte[] keyMaterial = AfSplitter.encode(algorithms.hash(), keyLength, LuksHeader.STRIPES, masterKey, random);
            SectorCipher.of(algorithms, slotKey).encrypt(0, ByteBuffer.wrap(keyMaterial));
            return keyMaterial;
        } finally {
            Arrays.fill(slotKey, (byte) 0);
        }
    }

    /**
     * The bytes before the payload of a volume made with {@code options}, its header and eight slots of key
     * material (QEMU's qcrypto_block_calculate_payload_offset, which measure adds to a qcow2 image's sizes).
     */
    public static long headerLength(LuksOptions options) throws ImageException {
        return payloadOffsetSector(LuksAlgorithms.forCreate(options).masterKeyLength()) * LuksHeader.SECTOR_SIZE;
    }

    /** The 4096-byte header, then eight slots of key material for a master key of {@code keyLength} bytes. */
    private static long payloadOffsetSector(int keyLength) {
        return LuksHeader.HEADER_SECTORS
                + LuksHeader.SLOT_COUNT * LuksHeader.keyMaterialSectors(keyLength, LuksHeader.STRIPES);
    }

    /**
     * {@code perSecond} scaled to {@code iterTimeMillis} (unsigned, as QEMU's uint64) and divided, refused in
     * QEMU's words where it overflows, at least 1000.
     */
    static long iterations(long perSecond, long iterTimeMillis, int divisor) throws ImageException {
        if (Math.unsignedMultiplyHigh(perSecond, iterTimeMillis) != 0) {
            throw new ImageException("PBKDF iterations " + Long.toUnsignedString(perSecond) + " too large to scale"
                    + ERANGE);
        }
        long iterations = Long.divideUnsigned(Long.divideUnsigned(perSecond * iterTimeMillis, 1000), divisor);
        if (Long.compareUnsigned(iterations, 0xFFFF_FFFFL) > 0) {
            throw new ImageException("PBKDF iterations " + Long.toUnsignedString(iterations) + " larger than "
                    + 0xFFFF_FFFFL + ERANGE);
        }
        return Math.max(iterations, MIN_ITERATIONS);
    }

    /** A random (version 4) UUID from {@code random}, lowercase, as qemu_uuid_generate and unparse make one. */
    private static String uuid(SecureRandom random) {
        ByteBuffer b = ByteBuffer.wrap(randomBytes(random, 16));
        long high = (b.getLong(0) & ~0xF000L) | 0x4000L;
        long low = (b.getLong(8) & ~(0xC0L << 56)) | (0x80L << 56);
        return new UUID(high, low).toString();
    }

    static byte[] randomBytes(SecureRandom random, int length) {
        byte[] bytes = new byte[length];
        random.nextBytes(bytes);
        return bytes;
    }

    /** QEMU passes passwords to PBKDF2 with strlen: a NUL ends them. */
    static byte[] uptoNul(byte[] password) {
        for (int i = 0; i < password.length; i++) {
            if (password[i] == 0) {
                return Arrays.copyOf(password, i);
            }
        }
        return password;
    }
}
