package io.github.qcowloom.crypto;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * The 592-byte LUKS1 header (big endian) that starts a LUKS volume, and the checks QEMU makes of it before trusting
 * any offset in it (qcrypto_block_luks_check_header, then parse_header), in QEMU 7.2's order and words. A parsed
 * header's algorithms are known to be implemented, its key slots to lie between the header and the payload.
 * Immutable.
 */
public final class LuksHeader {
    /** Bytes of the header proper; key material follows at the key slots' offsets. */
    public static final int SIZE = 592;
    /** LUKS counts offsets in 512-byte sectors. */
    public static final int SECTOR_SIZE = 512;
    public static final int SLOT_COUNT = 8;
    public static final int DIGEST_LENGTH = 20;
    public static final int SALT_LENGTH = 32;
    /** Anti-forensic stripes of every key slot: QEMU makes them so and refuses others. */
    public static final int STRIPES = 4000;
    /** A key slot's active field when it holds a key. */
    public static final int SLOT_ENABLED = 0x00AC71F3;
    /** A key slot's active field when it does not. */
    public static final int SLOT_DISABLED = 0x0000DEAD;
    /** The header area before the first key material: 4096 bytes, in sectors; key material aligns to it too. */
    static final int HEADER_SECTORS = 4096 / SECTOR_SIZE;
    private static final byte[] MAGIC = {'L', 'U', 'K', 'S', (byte) 0xBA, (byte) 0xBE};
    private static final int VERSION = 1;
    private static final int NAME_LENGTH = 32;
    private static final int UUID_LENGTH = 40;
    private static final int CIPHER_NAME_AT = 8;
    private static final int CIPHER_MODE_AT = 40;
    private static final int HASH_SPEC_AT = 72;
    private static final int PAYLOAD_OFFSET_AT = 104;
    private static final int KEY_BYTES_AT = 108;
    private static final int DIGEST_AT = 112;
    private static final int SALT_AT = 132;
    private static final int ITERATIONS_AT = 164;
    private static final int UUID_AT = 168;
    private static final int SLOTS_AT = 208;
    private static final int SLOT_SIZE = 48;

    private final String cipherName;
    private final String cipherMode;
    private final String hashSpec;
    private final long payloadOffsetSector;
    private final int masterKeyLength;
    private final byte[] masterKeyDigest;
    private final byte[] masterKeySalt;
    private final long masterKeyIterations;
    private final String uuid;
    private final List<KeySlot> keySlots;
    private final LuksAlgorithms algorithms;

    /** A header of {@code algorithms} (as {@link LuksFormat#create} makes one); its fields are not checked. */
    LuksHeader(LuksAlgorithms algorithms, long payloadOffsetSector, byte[] masterKeyDigest, byte[] masterKeySalt,
            long masterKeyIterations, String uuid, List<KeySlot> keySlots) {
        this(algorithms.cipher().luksName(), algorithms.cipherModeSpec(), algorithms.hash().qemuName(),
                payloadOffsetSector, algorithms.masterKeyLength(), masterKeyDigest, masterKeySalt,
                masterKeyIterations, uuid, keySlots, algorithms);
    }

    private LuksHeader(String cipherName, String cipherMode, String hashSpec, long payloadOffsetSector,
            int masterKeyLength, byte[] masterKeyDigest, byte[] masterKeySalt, long masterKeyIterations,
            String uuid, List<KeySlot> keySlots, LuksAlgorithms algorithms) {
        this.cipherName = cipherName;
        this.cipherMode = cipherMode;
        this.hashSpec = hashSpec;
        this.payloadOffsetSector = payloadOffsetSector;
        this.masterKeyLength = masterKeyLength;
        this.masterKeyDigest = masterKeyDigest.clone();
        this.masterKeySalt = masterKeySalt.clone();
        this.masterKeyIterations = masterKeyIterations;
        this.uuid = uuid;
        this.keySlots = List.copyOf(keySlots);
        this.algorithms = algorithms;
        if (this.keySlots.size() != SLOT_COUNT) {
            throw new IllegalArgumentException(this.keySlots.size() + " key slots, LUKS has " + SLOT_COUNT);
        }
    }

    /** Parses and checks the header at the start of {@code bytes}. */
    public static LuksHeader parse(byte[] bytes) throws ImageException {
        return parse(ByteBuffer.wrap(bytes));
    }

    /** Parses and checks the header at {@code buffer}'s position; the buffer is left as it was. */
    public static LuksHeader parse(ByteBuffer buffer) throws ImageException {
        if (buffer.remaining() < SIZE) {
            throw new CorruptImageException("LUKS header is truncated: " + buffer.remaining() + " of " + SIZE
                    + " bytes");
        }
        // Absolute reads of big-endian fields, whatever the caller's buffer order is.
        ByteBuffer b = buffer.slice(buffer.position(), SIZE).order(ByteOrder.BIG_ENDIAN);
        byte[] magic = bytes(b, 0, MAGIC.length);
        if (!Arrays.equals(magic, MAGIC)) {
            throw new CorruptImageException("Volume is not in LUKS format");
        }
        int version = Short.toUnsignedInt(b.getShort(6));
        if (version != VERSION) {
            throw new UnsupportedFeatureException("LUKS version " + version,
                    "LUKS version " + version + " is not supported");
        }
        String cipherName = terminated(b, CIPHER_NAME_AT, "cipher name");
        String cipherMode = terminated(b, CIPHER_MODE_AT, "cipher mode");
        String hashSpec = terminated(b, HASH_SPEC_AT, "hash spec");
        long payloadOffset = u32(b, PAYLOAD_OFFSET_AT);
        long keyBytes = u32(b, KEY_BYTES_AT);
        long iterations = u32(b, ITERATIONS_AT);
        if (payloadOffset < HEADER_SECTORS) {
            throw new CorruptImageException("LUKS payload is overlapping with the header");
        }
        if (iterations == 0) {
            throw new CorruptImageException("LUKS key iteration count is zero");
        }
        KeySlot[] slots = new KeySlot[SLOT_COUNT];
        for (int i = 0; i < SLOT_COUNT; i++) {
            slots[i] = slot(b, i);
        }
        checkSlots(slots, keyBytes, payloadOffset);
        LuksAlgorithms algorithms = LuksAlgorithms.fromHeader(cipherName, cipherMode, hashSpec, keyBytes);
        byte[] uuid = bytes(b, UUID_AT, UUID_LENGTH);
        // keyBytes is small now: a cipher was found for it.
        return new LuksHeader(cipherName, cipherMode, hashSpec, payloadOffset, (int) keyBytes,
                bytes(b, DIGEST_AT, DIGEST_LENGTH), bytes(b, SALT_AT, SALT_LENGTH), iterations,
                new String(uuid, 0, nulAt(uuid), StandardCharsets.ISO_8859_1), List.of(slots), algorithms);
    }

    /**
     * QEMU's per-slot checks, all slots enabled or not. Arithmetic in long, the fields being u32: QEMU 7.2 adds a
     * slot's start and length in 32 bits, which lets a slot that wraps past sector 2^32 through; not here.
     */
    private static void checkSlots(KeySlot[] slots, long keyBytes, long payloadOffset) throws CorruptImageException {
        for (int i = 0; i < SLOT_COUNT; i++) {
            KeySlot s = slots[i];
            long start = s.keyOffsetSector();
            long length = keyMaterialSectors(keyBytes, s.stripes());
            if (s.stripes() != STRIPES) {
                // QEMU prints the u32 with %d.
                throw new CorruptImageException("Keyslot " + i + " is corrupted (stripes " + (int) s.stripes()
                        + " != " + STRIPES + ")");
            }
            if (s.state() != SLOT_ENABLED && s.state() != SLOT_DISABLED) {
                throw new CorruptImageException("Keyslot " + i + " state (active/disable) is corrupted");
            }
            if (s.active() && s.iterations() == 0) {
                throw new CorruptImageException("Keyslot " + i + " iteration count is zero");
            }
            if (start < HEADER_SECTORS) {
                throw new CorruptImageException("Keyslot " + i + " is overlapping with the LUKS header");
            }
            if (start + length > payloadOffset) {
                throw new CorruptImageException("Keyslot " + i + " is overlapping with the encrypted payload");
            }
            for (int j = i + 1; j < SLOT_COUNT; j++) {
                long start2 = slots[j].keyOffsetSector();
                long length2 = keyMaterialSectors(keyBytes, slots[j].stripes());
                if (start + length > start2 && start2 + length2 > start) {
                    throw new CorruptImageException("Keyslots " + i + " and " + j
                            + " are overlapping in the header");
                }
            }
        }
    }

    /** Sectors of one slot's key material: whole sectors, rounded up to the header's 8 (as cryptsetup lays them). */
    static long keyMaterialSectors(long masterKeyLength, long stripes) {
        // Two u32s: the product fits 64 bits unsigned, and its sector count a long.
        long bytes = masterKeyLength * stripes;
        long sectors = Long.divideUnsigned(bytes, SECTOR_SIZE)
                + (Long.remainderUnsigned(bytes, SECTOR_SIZE) != 0 ? 1 : 0);
        return Math.ceilDiv(sectors, HEADER_SECTORS) * HEADER_SECTORS;
    }

    /**
     * {@code bytes}, a header's 592 bytes, with key slot {@code index} set to {@code slot} and every other byte as it
     * was, as QEMU stores a header whose slot it changed (its struct keeps what lies after a string's NUL).
     */
    public static byte[] withKeySlot(byte[] bytes, int index, KeySlot slot) {
        ByteBuffer b = ByteBuffer.wrap(Arrays.copyOf(bytes, SIZE));
        putSlot(b, index, slot);
        return b.array();
    }

    private static void putSlot(ByteBuffer b, int index, KeySlot s) {
        int at = SLOTS_AT + index * SLOT_SIZE;
        b.putInt(at, s.state()).putInt(at + 4, (int) s.iterations()).put(at + 8, s.salt());
        b.putInt(at + 40, (int) s.keyOffsetSector()).putInt(at + 44, (int) s.stripes());
    }

    /** The header as 592 bytes, strings NUL-padded. */
    public byte[] toBytes() {
        ByteBuffer b = ByteBuffer.allocate(SIZE);
        b.put(0, MAGIC).putShort(6, (short) VERSION);
        putString(b, CIPHER_NAME_AT, cipherName, NAME_LENGTH);
        putString(b, CIPHER_MODE_AT, cipherMode, NAME_LENGTH);
        putString(b, HASH_SPEC_AT, hashSpec, NAME_LENGTH);
        b.putInt(PAYLOAD_OFFSET_AT, (int) payloadOffsetSector).putInt(KEY_BYTES_AT, masterKeyLength);
        b.put(DIGEST_AT, masterKeyDigest).put(SALT_AT, masterKeySalt);
        b.putInt(ITERATIONS_AT, (int) masterKeyIterations);
        putString(b, UUID_AT, uuid, UUID_LENGTH);
        for (int i = 0; i < SLOT_COUNT; i++) {
            putSlot(b, i, keySlots.get(i));
        }
        return b.array();
    }

    /** What {@code qemu-img info} shows of the volume (QEMU's qcrypto_block_luks_get_info). */
    public LuksInfo info() {
        List<LuksInfo.Slot> slots = keySlots.stream().map(s -> new LuksInfo.Slot(s.active(),
                s.keyOffsetSector() * SECTOR_SIZE,
                s.active() ? OptionalLong.of(s.iterations()) : OptionalLong.empty(),
                s.active() ? OptionalLong.of(s.stripes()) : OptionalLong.empty())).toList();
        return new LuksInfo(algorithms.cipher(), algorithms.mode(), algorithms.ivgen(),
                algorithms.ivgen() == LuksIvGen.ESSIV ? algorithms.ivgenHash() : Optional.empty(),
                algorithms.hash(), payloadOffset(), masterKeyIterations, uuid, slots);
    }

    /** The algorithms the header names, known to be implemented. */
    public LuksAlgorithms algorithms() {
        return algorithms;
    }

    /** cipher_name: "aes". */
    public String cipherName() {
        return cipherName;
    }

    /** cipher_mode: "xts-plain64", "cbc-essiv:sha256". */
    public String cipherMode() {
        return cipherMode;
    }

    /** hash_spec: "sha256". */
    public String hashSpec() {
        return hashSpec;
    }

    /** Where the encrypted payload starts, in sectors from the header. */
    public long payloadOffsetSector() {
        return payloadOffsetSector;
    }

    /** Where the encrypted payload starts, in bytes from the header. */
    public long payloadOffset() {
        return payloadOffsetSector * SECTOR_SIZE;
    }

    /** Bytes of the master key (key_bytes): the cipher's key, twice for XTS. */
    public int masterKeyLength() {
        return masterKeyLength;
    }

    /** PBKDF2 of the master key, which tells a right master key from a wrong one. */
    public byte[] masterKeyDigest() {
        return masterKeyDigest.clone();
    }

    /** The salt of {@link #masterKeyDigest()}. */
    public byte[] masterKeySalt() {
        return masterKeySalt.clone();
    }

    /** The PBKDF2 iterations of {@link #masterKeyDigest()}. */
    public long masterKeyIterations() {
        return masterKeyIterations;
    }

    /** The volume's UUID as the header spells it, up to its first NUL. */
    public String uuid() {
        return uuid;
    }

    /** The eight key slots in order. */
    public List<KeySlot> keySlots() {
        return keySlots;
    }

    private static KeySlot slot(ByteBuffer b, int index) {
        int at = SLOTS_AT + index * SLOT_SIZE;
        return new KeySlot(b.getInt(at), u32(b, at + 4), bytes(b, at + 8, SALT_LENGTH), u32(b, at + 40),
                u32(b, at + 44));
    }

    private static long u32(ByteBuffer b, int at) {
        return Integer.toUnsignedLong(b.getInt(at));
    }

    private static byte[] bytes(ByteBuffer b, int at, int length) {
        byte[] bytes = new byte[length];
        b.get(at, bytes);
        return bytes;
    }

    /** A 32-byte string field up to its NUL, which QEMU requires. */
    private static String terminated(ByteBuffer b, int at, String what) throws CorruptImageException {
        byte[] field = bytes(b, at, NAME_LENGTH);
        int nul = nulAt(field);
        if (nul == field.length) {
            throw new CorruptImageException("LUKS header " + what + " is not NUL terminated");
        }
        return new String(field, 0, nul, StandardCharsets.ISO_8859_1);
    }

    private static int nulAt(byte[] field) {
        int nul = 0;
        while (nul < field.length && field[nul] != 0) {
            nul++;
        }
        return nul;
    }

    private static void putString(ByteBuffer b, int at, String s, int fieldLength) {
        byte[] bytes = s.getBytes(StandardCharsets.ISO_8859_1);
        b.put(at, bytes, 0, Math.min(bytes.length, fieldLength));
    }

    /**
     * One of the eight key slots: where its key material lies, and how to turn a password into the key that
     * decrypts it. Disabled slots keep their offset (QEMU lays all eight out) with zero salt and iterations.
     *
     * @param state the active field: enabled (0x00AC71F3) or disabled (0x0000DEAD) once parsed
     * @param iterations PBKDF2 iterations of the password (u32)
     * @param salt PBKDF2 salt of the password, 32 bytes
     * @param keyOffsetSector where the key material starts, in sectors from the header (u32)
     * @param stripes anti-forensic stripes of the key material (u32)
     */
    public record KeySlot(int state, long iterations, byte[] salt, long keyOffsetSector, long stripes) {
        public KeySlot {
            salt = salt.clone();
            if (salt.length != SALT_LENGTH) {
                throw new IllegalArgumentException("a key slot's salt is " + SALT_LENGTH + " bytes");
            }
        }

        /** An enabled slot. */
        static KeySlot enabled(long iterations, byte[] salt, long keyOffsetSector) {
            return new KeySlot(SLOT_ENABLED, iterations, salt, keyOffsetSector, STRIPES);
        }

        /** A disabled slot, as QEMU leaves the seven it does not use. */
        static KeySlot disabled(long keyOffsetSector) {
            return new KeySlot(SLOT_DISABLED, 0, new byte[SALT_LENGTH], keyOffsetSector, STRIPES);
        }

        /** Whether the slot holds a key. */
        public boolean active() {
            return state == SLOT_ENABLED;
        }

        @Override
        public byte[] salt() {
            return salt.clone();
        }

        /** Byte offset of the key material from the header. */
        public long keyOffset() {
            return keyOffsetSector * SECTOR_SIZE;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof KeySlot k && k.state == state && k.iterations == iterations
                    && Arrays.equals(k.salt, salt) && k.keyOffsetSector == keyOffsetSector && k.stripes == stripes;
        }

        @Override
        public int hashCode() {
            return Objects.hash(state, iterations, Arrays.hashCode(salt), keyOffsetSector, stripes);
        }

        @Override
        public String toString() {
            return "KeySlot[" + (active() ? "enabled" : state == SLOT_DISABLED ? "disabled"
                    : String.format("state 0x%08x", state)) + ", " + iterations + " iterations, key at sector "
                    + keyOffsetSector + ", " + stripes + " stripes]";
        }
    }
}
