package io.github.qcowloom.crypto;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The header's layout, and QEMU 7.2's checks of it in its order and words: a valid aes-256-xts-plain64 header
 * (64-byte key, slots of 504 sectors, payload at sector 4040) with one field spoilt at a time.
 */
class LuksHeaderTest {
    private static final int CIPHER_NAME = 8;
    private static final int CIPHER_MODE = 40;
    private static final int HASH_SPEC = 72;
    private static final int PAYLOAD_OFFSET = 104;
    private static final int KEY_BYTES = 108;
    private static final int ITERATIONS = 164;

    private static LuksFormat.Created created;
    private static byte[] valid;

    @BeforeAll
    static void makeOne() throws Exception {
        created = LuksFixtures.create(LuksOptions.defaults());
        valid = Arrays.copyOf(created.headerArea(), LuksHeader.SIZE);
    }

    @Test
    void theFieldsAtTheirOffsets() throws Exception {
        ByteBuffer b = ByteBuffer.wrap(valid);
        assertEquals("LUKS", new String(valid, 0, 4, StandardCharsets.US_ASCII));
        assertEquals(0xBABE, Short.toUnsignedInt(b.getShort(4)));
        assertEquals(1, b.getShort(6));
        assertEquals("aes", string(CIPHER_NAME, 32));
        assertEquals("xts-plain64", string(CIPHER_MODE, 32));
        assertEquals("sha256", string(HASH_SPEC, 32));
        assertEquals(4040, b.getInt(PAYLOAD_OFFSET));
        assertEquals(64, b.getInt(KEY_BYTES));
        assertEquals(1000, b.getInt(ITERATIONS));
        LuksHeader h = created.header();
        assertArrayEquals(h.masterKeyDigest(), Arrays.copyOfRange(valid, 112, 132));
        assertArrayEquals(h.masterKeySalt(), Arrays.copyOfRange(valid, 132, 164));
        assertEquals(h.uuid(), string(168, 40));
        for (int i = 0; i < 8; i++) {
            int at = 208 + 48 * i;
            assertEquals(i == 0 ? 0x00AC71F3 : 0x0000DEAD, b.getInt(at));
            assertEquals(i == 0 ? 1000 : 0, b.getInt(at + 4));
            assertArrayEquals(h.keySlots().get(i).salt(), Arrays.copyOfRange(valid, at + 8, at + 40));
            assertEquals(8 + 504 * i, b.getInt(at + 40));
            assertEquals(4000, b.getInt(at + 44));
        }
    }

    @Test
    void parseThenToBytesGivesTheBytesBack() throws Exception {
        LuksHeader parsed = LuksHeader.parse(valid);
        assertArrayEquals(valid, parsed.toBytes());
        assertEquals(created.header().keySlots(), parsed.keySlots());
        assertEquals(created.header().uuid(), parsed.uuid());
        assertEquals(4040L * 512, parsed.payloadOffset());
        assertEquals("aes-256 xts-plain64 sha256", parsed.algorithms().toString());
    }

    /** From a buffer's position, whatever its byte order, leaving it as it was. */
    @Test
    void parseFromABufferAtItsPosition() throws Exception {
        ByteBuffer b = ByteBuffer.allocateDirect(LuksHeader.SIZE + 10).order(ByteOrder.LITTLE_ENDIAN);
        b.put(7, valid).position(7);
        assertArrayEquals(valid, LuksHeader.parse(b).toBytes());
        assertEquals(7, b.position());
        assertEquals(ByteOrder.LITTLE_ENDIAN, b.order());
    }

    @Test
    void infoAsQemuImgShowsIt() throws Exception {
        LuksInfo info = LuksHeader.parse(valid).info();
        assertEquals(LuksCipher.AES_256, info.cipherAlg());
        assertEquals(LuksCipherMode.XTS, info.cipherMode());
        assertEquals(LuksIvGen.PLAIN64, info.ivgenAlg());
        assertEquals(Optional.empty(), info.ivgenHashAlg());
        assertEquals(LuksHash.SHA256, info.hashAlg());
        assertEquals(2068480, info.payloadOffset());
        assertEquals(1000, info.masterKeyIters());
        assertEquals(created.header().uuid(), info.uuid());
        assertEquals(new LuksInfo.Slot(true, 4096, OptionalLong.of(1000), OptionalLong.of(4000)), info.slots().get(0));
        assertEquals(new LuksInfo.Slot(false, 1810432, OptionalLong.empty(), OptionalLong.empty()),
                info.slots().get(7));
        LuksInfo essiv = spoilt(b -> name(b, CIPHER_MODE, "xts-essiv:sha256")).info();
        assertEquals(Optional.of(LuksHash.SHA256), essiv.ivgenHashAlg());
    }

    /** Named with plain64, a hash QEMU does not implement here is ignored, as QEMU ignores it. */
    @Test
    void anIgnoredIvHashNeedNotBeImplemented() throws Exception {
        LuksHeader h = spoilt(b -> name(b, CIPHER_MODE, "xts-plain64:ripemd160"));
        assertEquals(Optional.of(LuksHash.RIPEMD160), h.algorithms().ivgenHash());
        assertEquals(Optional.empty(), h.info().ivgenHashAlg());
    }

    static Stream<Arguments> corruptions() {
        return Stream.of(
                corrupt("magic", b -> b.put(0, (byte) 'l'), "Volume is not in LUKS format"),
                corrupt("cipher name", b -> fill(b, CIPHER_NAME), "LUKS header cipher name is not NUL terminated"),
                corrupt("cipher mode", b -> fill(b, CIPHER_MODE), "LUKS header cipher mode is not NUL terminated"),
                corrupt("hash spec", b -> fill(b, HASH_SPEC), "LUKS header hash spec is not NUL terminated"),
                corrupt("payload", b -> b.putInt(PAYLOAD_OFFSET, 7), "LUKS payload is overlapping with the header"),
                corrupt("iterations", b -> b.putInt(ITERATIONS, 0), "LUKS key iteration count is zero"),
                corrupt("stripes", b -> b.putInt(slot(3) + 44, 3999), "Keyslot 3 is corrupted (stripes 3999 != 4000)"),
                corrupt("no stripes", b -> b.putInt(slot(0) + 44, 0), "Keyslot 0 is corrupted (stripes 0 != 4000)"),
                corrupt("u32 stripes", b -> b.putInt(slot(6) + 44, -1), "Keyslot 6 is corrupted (stripes -1 != 4000)"),
                corrupt("state", b -> b.putInt(slot(2), 1), "Keyslot 2 state (active/disable) is corrupted"),
                corrupt("slot iterations", b -> b.putInt(slot(0) + 4, 0), "Keyslot 0 iteration count is zero"),
                corrupt("over header", b -> b.putInt(slot(0) + 40, 7), "Keyslot 0 is overlapping with the LUKS header"),
                corrupt("over payload", b -> b.putInt(slot(7) + 40, 4000),
                        "Keyslot 7 is overlapping with the encrypted payload"),
                corrupt("past u32", b -> b.putInt(slot(7) + 40, -1),
                        "Keyslot 7 is overlapping with the encrypted payload"),
                corrupt("same place", b -> b.putInt(slot(0) + 40, 8 + 504),
                        "Keyslots 0 and 1 are overlapping in the header"),
                corrupt("one sector in", b -> b.putInt(slot(5) + 40, 8 + 504 * 4 + 503),
                        "Keyslots 4 and 5 are overlapping in the header"),
                corrupt("mode string", b -> name(b, CIPHER_MODE, "xtsplain64"),
                        "Unexpected cipher mode string format 'xtsplain64'"),
                corrupt("iv hash", b -> name(b, CIPHER_MODE, "xts-plain64:sha257"),
                        "Hash algorithm 'sha257' not supported"),
                corrupt("mode", b -> name(b, CIPHER_MODE, "foo-plain64"), "Cipher mode 'foo' not supported"),
                corrupt("cipher", b -> name(b, CIPHER_NAME, "foo"),
                        "Algorithm 'foo' with key size 32 bytes not supported"),
                corrupt("key size", b -> b.putInt(KEY_BYTES, 40),
                        "Algorithm 'aes' with key size 20 bytes not supported"),
                corrupt("hash", b -> name(b, HASH_SPEC, "sha2566"), "Hash algorithm 'sha2566' not supported"),
                corrupt("no hash", b -> name(b, HASH_SPEC, ""), "Hash algorithm '' not supported"),
                corrupt("iv generator", b -> name(b, CIPHER_MODE, "xts-plain65"),
                        "IV generator 'plain65' not supported"),
                corrupt("essiv hash", b -> name(b, CIPHER_MODE, "xts-essiv"),
                        "Missing IV generator hash specification"),
                corrupt("essiv key", b -> name(b, CIPHER_MODE, "xts-essiv:sha1"),
                        "No AES cipher with key size 20 available"),
                corrupt("odd xts key", b -> b.putInt(KEY_BYTES, 33),
                        "XTS cipher key length should be a multiple of 2"),
                // Checked in QEMU's order: the header's own fields, each slot in turn, then the algorithm names.
                corrupt("magic before version", b -> b.put(0, (byte) 'l').putShort(6, (short) 2),
                        "Volume is not in LUKS format"),
                corrupt("stripes before state", b -> b.putInt(slot(1) + 44, 1).putInt(slot(1), 1),
                        "Keyslot 1 is corrupted (stripes 1 != 4000)"),
                corrupt("slot 0 before slot 1", b -> b.putInt(slot(1) + 44, 1).putInt(slot(0), 1),
                        "Keyslot 0 state (active/disable) is corrupted"),
                corrupt("slots before names", b -> name(b, CIPHER_MODE, "nonsense").putInt(slot(0) + 4, 0),
                        "Keyslot 0 iteration count is zero"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("corruptions")
    void corruptHeadersAreRefusedInQemusWords(String what, Consumer<ByteBuffer> spoil, String message) {
        CorruptImageException e = assertThrows(CorruptImageException.class, () -> spoilt(spoil));
        assertEquals(message, e.getMessage());
    }

    static Stream<Arguments> unsupported() {
        return Stream.of(
                unsupported(b -> b.putShort(6, (short) 2), "LUKS version 2", "LUKS version 2 is not supported"),
                unsupported(b -> name(b, CIPHER_NAME, "serpent"), "LUKS cipher serpent-xts-plain64",
                        "LUKS cipher serpent is not supported"),
                unsupported(b -> name(b, CIPHER_NAME, "twofish"), "LUKS cipher twofish-xts-plain64",
                        "LUKS cipher twofish is not supported"),
                unsupported(b -> name(b, CIPHER_NAME, "cast5").putInt(KEY_BYTES, 32), "LUKS cipher cast5-xts-plain64",
                        "LUKS cipher cast5 is not supported"),
                unsupported(b -> name(b, CIPHER_MODE, "ctr-plain64").putInt(KEY_BYTES, 32),
                        "LUKS cipher aes-ctr-plain64", "LUKS cipher mode ctr is not supported"),
                unsupported(b -> name(b, HASH_SPEC, "ripemd160"), "LUKS hash ripemd160",
                        "LUKS hash ripemd160 is not supported"),
                unsupported(b -> name(b, CIPHER_MODE, "cbc-plain64").putInt(KEY_BYTES, 24),
                        "LUKS cipher aes-cbc-plain64",
                        "LUKS key material of 96000 bytes is not a whole number of 512-byte sectors"));
    }

    @ParameterizedTest(name = "{1}")
    @MethodSource("unsupported")
    void whatQemuRunsAndThisDoesNotIsUnsupported(Consumer<ByteBuffer> spoil, String feature, String message) {
        UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class, () -> spoilt(spoil));
        assertEquals(feature, e.feature());
        assertEquals(message, e.getMessage());
    }

    @Test
    void aShortHeaderIsCorrupt() {
        ImageException e = assertThrows(CorruptImageException.class,
                () -> LuksHeader.parse(Arrays.copyOf(valid, LuksHeader.SIZE - 1)));
        assertEquals("LUKS header is truncated: 591 of 592 bytes", e.getMessage());
    }

    @Test
    void keySlotsKeepTheirSalt() {
        byte[] salt = LuksFixtures.random(32);
        byte[] kept = salt.clone();
        LuksHeader.KeySlot slot = new LuksHeader.KeySlot(LuksHeader.SLOT_ENABLED, 5, salt, 8, 4000);
        salt[0] ^= 1;
        slot.salt()[1] ^= 1;
        assertArrayEquals(kept, slot.salt());
        salt[0] ^= 1;
        assertEquals(slot, new LuksHeader.KeySlot(LuksHeader.SLOT_ENABLED, 5, salt, 8, 4000));
        assertEquals(4096, slot.keyOffset());
        assertThrows(IllegalArgumentException.class, () -> new LuksHeader.KeySlot(0, 0, new byte[31], 0, 0));
    }

    private static Arguments corrupt(String what, Consumer<ByteBuffer> spoil, String message) {
        return Arguments.of(what, spoil, message);
    }

    private static Arguments unsupported(Consumer<ByteBuffer> spoil, String feature, String message) {
        return Arguments.of(spoil, feature, message);
    }

    private static LuksHeader spoilt(Consumer<ByteBuffer> spoil) throws ImageException {
        ByteBuffer b = ByteBuffer.wrap(valid.clone());
        spoil.accept(b);
        return LuksHeader.parse(b);
    }

    private static int slot(int i) {
        return 208 + 48 * i;
    }

    private static void fill(ByteBuffer b, int at) {
        for (int i = 0; i < 32; i++) {
            b.put(at + i, (byte) 'x');
        }
    }

    private static ByteBuffer name(ByteBuffer b, int at, String name) {
        byte[] field = Arrays.copyOf(name.getBytes(StandardCharsets.US_ASCII), 32);
        return b.put(at, field);
    }

    private static String string(int at, int length) {
        int end = at;
        while (end < at + length && valid[end] != 0) {
            end++;
        }
        return new String(valid, at, end - at, StandardCharsets.US_ASCII);
    }
}
