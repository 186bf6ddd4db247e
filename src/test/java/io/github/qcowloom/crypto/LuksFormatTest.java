package io.github.qcowloom.crypto;

import static io.github.qcowloom.crypto.LuksFixtures.PASSWORD;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Making volumes as qcrypto_block_luks_create does, and unlocking them as qcrypto_block_luks_open does. */
class LuksFormatTest {
    @ParameterizedTest(name = "{0} {1}-{2}:{3} {4}")
    @CsvSource({"AES_256, XTS, PLAIN64, , SHA256", "AES_128, CBC, ESSIV, SHA256, SHA1", "AES_256, ECB, PLAIN, , SHA512",
            "AES_192, XTS, PLAIN64, , MD5", "AES_128, XTS, ESSIV, MD5, SHA224", "AES_256, CBC, PLAIN64, SHA1, SHA384"})
    void theMasterKeyComesBackAndDecryptsThePayload(LuksCipher cipher, LuksCipherMode mode, LuksIvGen ivgen,
            LuksHash ivgenHash, LuksHash hash) throws Exception {
        LuksFormat.Created created = LuksFixtures.create(LuksFixtures.options(cipher, mode, ivgen, ivgenHash, hash));
        LuksHeader header = LuksHeader.parse(created.headerArea());
        assertArrayEquals(created.header().toBytes(), header.toBytes());
        byte[] key = LuksFormat.unlock(header, LuksFixtures.reader(created.headerArea()), PASSWORD);
        assertArrayEquals(created.masterKey(), key);
        assertEquals(mode.masterKeyLength(cipher.keyLength()), key.length);

        byte[] payload = LuksFixtures.random(8 * SectorCipher.SECTOR_SIZE);
        ByteBuffer data = ByteBuffer.wrap(payload.clone());
        created.cipher().encrypt(100, data);
        SectorCipher.of(header, key).decrypt(100, data);
        assertArrayEquals(payload, data.array());
    }

    @Test
    void aWrongPasswordUnlocksNothing() throws Exception {
        LuksFormat.Created created = LuksFixtures.create(LuksOptions.defaults());
        ImageException e = assertThrows(ImageException.class, () -> LuksFormat.unlock(created.header(),
                LuksFixtures.reader(created.headerArea()), "incorrect horse".getBytes(StandardCharsets.UTF_8)));
        assertEquals("Invalid password, cannot unlock any keyslot", e.getMessage());
    }

    /** QEMU hashes the password up to its first NUL (strlen), making and opening alike. */
    @Test
    void aNulEndsThePassword() throws Exception {
        byte[] withTail = "correct horse\0battery".getBytes(StandardCharsets.UTF_8);
        LuksFormat.Created created = LuksFormat.create(LuksOptions.defaults(), withTail, LuksFixtures.RANDOM,
                LuksFixtures.MINIMUM_RATE);
        assertArrayEquals(created.masterKey(),
                LuksFormat.unlock(created.header(), LuksFixtures.reader(created.headerArea()), PASSWORD));
    }

    /**
     * Slots are tried in order, disabled ones skipped: slot 0's material moved to slot 1 and slot 0 disabled, or
     * slot 0 left enabled over garbage, the key still comes from slot 1.
     */
    @Test
    void everyEnabledSlotIsTriedInTurn() throws Exception {
        LuksFormat.Created created = LuksFixtures.create(LuksOptions.defaults());
        LuksHeader.KeySlot used = created.header().keySlots().get(0);
        LuksHeader.KeySlot next = created.header().keySlots().get(1);
        byte[] area = created.headerArea();
        int material = created.header().masterKeyLength() * LuksHeader.STRIPES;
        System.arraycopy(area, (int) used.keyOffset(), area, (int) next.keyOffset(), material);
        Arrays.fill(area, (int) used.keyOffset(), (int) used.keyOffset() + material, (byte) 0x5a);
        ByteBuffer slots = ByteBuffer.wrap(area);
        slots.putInt(208 + 48 + 4, (int) used.iterations()).put(208 + 48 + 8, used.salt());
        for (int state : new int[] {LuksHeader.SLOT_DISABLED, LuksHeader.SLOT_ENABLED}) {
            slots.putInt(208, state).putInt(208 + 48, LuksHeader.SLOT_ENABLED);
            LuksHeader header = LuksHeader.parse(area);
            List<Long> reads = new ArrayList<>();
            KeyMaterialReader reader = (offset, dst) -> {
                reads.add(offset);
                LuksFixtures.reader(area).read(offset, dst);
            };
            assertArrayEquals(created.masterKey(), LuksFormat.unlock(header, reader, PASSWORD));
            assertEquals(state == LuksHeader.SLOT_ENABLED ? List.of(used.keyOffset(), next.keyOffset())
                    : List.of(next.keyOffset()), reads);
        }
    }

    /** QEMU's layout: 8 header sectors, then eight slots of whole 4 KiB, then the payload. */
    @ParameterizedTest(name = "{0}-{1}")
    @CsvSource({"AES_256, XTS, 504, 4040", "AES_128, XTS, 256, 2056", "AES_128, CBC, 128, 1032",
            "AES_256, ECB, 256, 2056", "AES_192, XTS, 376, 3016"})
    void slotsAndPayloadWhereQemuPutsThem(LuksCipher cipher, LuksCipherMode mode, long slotSectors,
            long payloadSector) throws Exception {
        LuksFormat.Created created = LuksFixtures.create(LuksFixtures.options(cipher, mode, LuksIvGen.PLAIN64,
                null, LuksHash.SHA256));
        LuksHeader header = created.header();
        assertEquals(payloadSector, header.payloadOffsetSector());
        assertEquals(payloadSector * 512, created.headerArea().length);
        for (int i = 0; i < LuksHeader.SLOT_COUNT; i++) {
            LuksHeader.KeySlot slot = header.keySlots().get(i);
            assertEquals(8 + i * slotSectors, slot.keyOffsetSector(), "slot " + i);
            assertEquals(LuksHeader.STRIPES, slot.stripes());
            assertEquals(i == 0, slot.active());
            assertEquals(i == 0 ? 1000 : 0, slot.iterations());
        }
        int materialEnd = 8 * 512 + header.masterKeyLength() * LuksHeader.STRIPES;
        byte[] area = created.headerArea();
        assertTrue(allZero(area, LuksHeader.SIZE, 8 * 512), "between the header and the key material");
        assertTrue(allZero(area, materialEnd, area.length), "after slot 0's key material");
        assertFalse(allZero(area, 8 * 512, materialEnd));
    }

    @Test
    void headerStrings() throws Exception {
        assertEquals("xts-plain64", LuksFixtures.create(LuksOptions.defaults()).header().cipherMode());
        LuksHeader essiv = LuksFixtures.create(LuksFixtures.options(LuksCipher.AES_128, LuksCipherMode.CBC,
                LuksIvGen.ESSIV, null, LuksHash.SHA1)).header();
        assertEquals("aes", essiv.cipherName());
        assertEquals("cbc-essiv:sha256", essiv.cipherMode());
        assertEquals("sha1", essiv.hashSpec());
        // A hash named with plain64 goes into the header, and QEMU ignores it.
        LuksHeader named = LuksFixtures.create(LuksFixtures.options(LuksCipher.AES_256, LuksCipherMode.XTS,
                LuksIvGen.PLAIN64, LuksHash.SHA1, LuksHash.SHA256)).header();
        assertEquals("xts-plain64:sha1", named.cipherMode());
        assertTrue(named.info().ivgenHashAlg().isEmpty());
    }

    @Test
    void aRandomVersion4Uuid() throws Exception {
        String uuid = LuksFixtures.create(LuksOptions.defaults()).header().uuid();
        assertEquals(36, uuid.length());
        assertEquals(uuid.toLowerCase(), uuid);
        assertEquals(4, UUID.fromString(uuid).version());
        assertEquals(2, UUID.fromString(uuid).variant());
        assertNotEquals(uuid, LuksFixtures.create(LuksOptions.defaults()).header().uuid());
    }

    /**
     * The rate scaled to iter-time: an eighth for the master key digest (measured over 20 bytes), all of it for
     * the slot (measured over the key's length); at least 1000 each.
     */
    @Test
    void iterationsFromTheMeasuredRate() throws Exception {
        List<String> asked = new ArrayList<>();
        Pbkdf2.Rate rate = (hash, length) -> {
            asked.add(hash.qemuName() + "/" + length);
            return 96_000;
        };
        LuksOptions options = new LuksOptions(LuksCipher.AES_256, LuksCipherMode.XTS, LuksIvGen.PLAIN64, null,
                LuksHash.SHA256, 100);
        LuksFormat.Created created = LuksFormat.create(options, PASSWORD, LuksFixtures.RANDOM, rate);
        assertEquals(List.of("sha256/20", "sha256/64"), asked);
        assertEquals(1200, created.header().masterKeyIterations());
        assertEquals(9600, created.header().keySlots().get(0).iterations());
        assertArrayEquals(created.masterKey(),
                LuksFormat.unlock(created.header(), LuksFixtures.reader(created.headerArea()), PASSWORD));

        LuksOptions zero = new LuksOptions(LuksCipher.AES_256, LuksCipherMode.XTS, LuksIvGen.PLAIN64, null,
                LuksHash.SHA256, 0);
        LuksHeader minimum = LuksFormat.create(zero, PASSWORD, LuksFixtures.RANDOM, rate).header();
        assertEquals(1000, minimum.masterKeyIterations());
        assertEquals(1000, minimum.keySlots().get(0).iterations());
    }

    @Test
    void iterationsThatOverflowAreRefusedInQemusWords() {
        LuksOptions forever = new LuksOptions(LuksCipher.AES_256, LuksCipherMode.XTS, LuksIvGen.PLAIN64, null,
                LuksHash.SHA256, -1);
        ImageException e = assertThrows(ImageException.class,
                () -> LuksFormat.create(forever, PASSWORD, LuksFixtures.RANDOM, (hash, length) -> 2));
        assertEquals("PBKDF iterations 2 too large to scale: Numerical result out of range", e.getMessage());

        LuksOptions second = new LuksOptions(LuksCipher.AES_256, LuksCipherMode.XTS, LuksIvGen.PLAIN64, null,
                LuksHash.SHA256, 1000);
        e = assertThrows(ImageException.class, () -> LuksFormat.create(second, PASSWORD, LuksFixtures.RANDOM,
                (hash, length) -> length == 20 ? 1000 : 5_000_000_000L));
        assertEquals("PBKDF iterations 5000000000 larger than 4294967295: Numerical result out of range",
                e.getMessage());
    }

    @ParameterizedTest(name = "{0}-{1}-{2}:{3}")
    @CsvSource(delimiter = '|', textBlock = """
            DES         | CBC | PLAIN64 |        | Algorithm 'des' not supported
            TRIPLE_DES  | CBC | PLAIN64 |        | Algorithm '3des' not supported
            AES_256     | XTS | ESSIV   | SHA1   | No AES cipher with key size 20 available
            AES_128     | CBC | ESSIV   | SHA384 | No AES cipher with key size 48 available
            TWOFISH_128 | CBC | ESSIV   | SHA1   | No Twofish cipher with key size 20 available
            CAST5_128   | CBC | ESSIV   | SHA256 | Cipher cast5-128 not supported with essiv
            """)
    void optionsQemuRefuses(LuksCipher cipher, LuksCipherMode mode, LuksIvGen ivgen, LuksHash ivgenHash,
            String message) {
        ImageException e = assertThrows(ImageException.class,
                () -> LuksFixtures.create(LuksFixtures.options(cipher, mode, ivgen, ivgenHash, LuksHash.SHA256)));
        assertEquals(ImageException.class, e.getClass());
        assertEquals(message, e.getMessage());
    }

    @ParameterizedTest(name = "{0}-{1} {2}")
    @CsvSource(delimiter = '|', textBlock = """
            SERPENT_256 | XTS | SHA256    | LUKS cipher serpent-xts-plain64 | LUKS cipher serpent is not supported
            CAST5_128   | CBC | SHA256    | LUKS cipher cast5-cbc-plain64   | LUKS cipher cast5 is not supported
            AES_256     | CTR | SHA256    | LUKS cipher aes-ctr-plain64     | LUKS cipher mode ctr is not supported
            AES_256     | XTS | RIPEMD160 | LUKS hash ripemd160             | LUKS hash ripemd160 is not supported
            AES_192     | CBC | SHA256    | LUKS cipher aes-cbc-plain64     \
            | LUKS key material of 96000 bytes is not a whole number of 512-byte sectors
            """)
    void optionsNotImplementedHere(LuksCipher cipher, LuksCipherMode mode, LuksHash hash, String feature,
            String message) {
        UnsupportedFeatureException e = assertThrows(UnsupportedFeatureException.class,
                () -> LuksFixtures.create(LuksFixtures.options(cipher, mode, LuksIvGen.PLAIN64, null, hash)));
        assertEquals(feature, e.feature());
        assertEquals(message, e.getMessage());
    }

    private static boolean allZero(byte[] bytes, int from, int to) {
        for (int i = from; i < to; i++) {
            if (bytes[i] != 0) {
                return false;
            }
        }
        return true;
    }
}
