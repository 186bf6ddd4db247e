package io.github.qcowloom.crypto;

import static io.github.qcowloom.crypto.LuksFixtures.PASSWORD;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.ChainEncryption.Passphrase;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.crashkit.CrashOptions;
import io.github.qcowloom.crashkit.CrashSimStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * Key slot changes on a volume in memory (qemu-img amend's words and order are compared with qemu-img's in {@code
 * CliAmendKeySlotsTest}): what each change stores, what it overwrites, and what a crash at any moment leaves.
 */
class LuksKeySlotChangeTest {
    private static final byte[] NEW = "battery staple".getBytes(StandardCharsets.UTF_8);

    private static Passphrase secret(byte[] bytes) {
        return bytes::clone;
    }

    /** The header area in {@code file}, from its start, as the qcow2 driver gives it (syncs ranged). */
    private static LuksHeaderArea area(Storage file) {
        return new LuksHeaderArea() {
            @Override
            public void read(long at, byte[] dst) throws IOException {
                file.readFully(ByteBuffer.wrap(dst), at);
            }

            @Override
            public void write(long at, byte[] src) throws IOException {
                file.write(ByteBuffer.wrap(src), at);
            }

            @Override
            public void sync(long at, long length) throws IOException {
                file.flushRange(at, length);
            }
        };
    }

    private static LuksHeader apply(LuksKeySlotChange change, Storage file, byte[] masterKey, boolean force)
            throws IOException {
        byte[] header = new byte[LuksHeader.SIZE];
        file.readFully(ByteBuffer.wrap(header), 0);
        return change.apply(header, area(file), masterKey::clone, force, LuksFixtures.RANDOM,
                LuksFixtures.MINIMUM_RATE);
    }

    /** The slots {@code password} unlocks in {@code area}, by index. */
    private static Set<Integer> slotsOpenedBy(byte[] area, byte[] password) throws IOException {
        LuksHeader header = LuksHeader.parse(area);
        Set<Integer> opened = new TreeSet<>();
        for (int i = 0; i < LuksHeader.SLOT_COUNT; i++) {
            if (LuksFormat.unlockSlot(header, LuksFixtures.reader(area), password, i) != null) {
                opened.add(i);
            }
        }
        return opened;
    }

    @Test
    void anAddedSlotHoldsTheMasterKeyUnderItsPassphraseAndAnErasedOneNothing() throws Exception {
        LuksFormat.Created created = LuksFixtures.create(LuksOptions.defaults());
        CrashSimStorage file = new CrashSimStorage(created.headerArea());
        LuksHeader added = apply(new LuksKeySlotChange("active", null, "10", secret(NEW), null), file,
                created.masterKey(), false);
        assertTrue(added.keySlots().get(1).active());
        byte[] area = file.currentImage();
        assertArrayEquals(created.masterKey(), LuksFormat.unlock(added, LuksFixtures.reader(area), NEW));
        assertEquals(Set.of(0), slotsOpenedBy(area, PASSWORD));
        assertEquals(Set.of(1), slotsOpenedBy(area, NEW));
        // Every byte but slot 1's entry and material is as it was.
        byte[] before = created.headerArea();
        long material = added.keySlots().get(1).keyOffset();
        for (int i = 0; i < area.length; i++) {
            boolean slotEntry = i >= 208 + 48 && i < 208 + 2 * 48;
            boolean slotMaterial = i >= material && i < material + created.masterKey().length * 4000L;
            if (!slotEntry && !slotMaterial && area[i] != before[i]) {
                throw new AssertionError("byte " + i + " changed");
            }
        }

        byte[] oldMaterial = Arrays.copyOfRange(area, 4096, 4096 + created.masterKey().length * 4000);
        LuksHeader erased = apply(new LuksKeySlotChange("inactive", null, null, null, secret(PASSWORD)), file,
                created.masterKey(), false);
        area = file.currentImage();
        assertFalse(erased.keySlots().get(0).active());
        assertEquals(LuksHeader.KeySlot.disabled(8), erased.keySlots().get(0));
        // Random bytes over the old material: no sector of it is left.
        for (int at = 0; at < oldMaterial.length; at += 512) {
            assertFalse(Arrays.equals(oldMaterial, at, at + 512, area, 4096 + at, 4096 + at + 512), "sector " + at);
        }
        assertThrows(ImageException.class, () -> LuksFormat.unlock(erased, LuksFixtures.reader(file.currentImage()),
                PASSWORD));
        assertArrayEquals(created.masterKey(), LuksFormat.unlock(erased, LuksFixtures.reader(area), NEW));
    }

    @Test
    void theLastSlotIsKeptUnlessForced() throws Exception {
        LuksFormat.Created created = LuksFixtures.create(LuksOptions.defaults());
        CrashSimStorage file = new CrashSimStorage(created.headerArea());
        LuksKeySlotChange eraseSlot0 = new LuksKeySlotChange("inactive", "0", null, null, null);
        ImageException e = assertThrows(ImageException.class, () -> apply(eraseSlot0, file, created.masterKey(),
                false));
        assertEquals("Attempt to erase the only active keyslot 0 which will erase all the data in the image"
                + " irreversibly - refusing operation", e.getMessage());
        assertEquals(0, file.operationCount());
        LuksHeader none = apply(eraseSlot0, file, created.masterKey(), true);
        assertTrue(none.keySlots().stream().noneMatch(LuksHeader.KeySlot::active));
        assertNull(LuksFormat.unlockSlot(none, LuksFixtures.reader(file.currentImage()), PASSWORD, 0));
    }

    /**
     * A passphrase changed as an operator changes it (a new slot, then the old one erased by its passphrase, which
     * here two slots hold), and every crash state of the changes: the header always parses, some passphrase always
     * opens the volume, and which slots open is a state between the changes, never a slot enabled over material that
     * is not its own.
     */
    @Test
    void everyCrashStateOfAPassphraseChangeOpensWithTheOldOrTheNew() throws Exception {
        LuksFormat.Created created = LuksFixtures.create(LuksOptions.defaults());
        CrashSimStorage file = new CrashSimStorage(created.headerArea());
        apply(new LuksKeySlotChange("active", null, null, secret(NEW), null), file, created.masterKey(), false);
        apply(new LuksKeySlotChange("active", null, null, secret(PASSWORD), null), file, created.masterKey(), false);
        apply(new LuksKeySlotChange("inactive", null, null, null, secret(PASSWORD)), file, created.masterKey(),
                false);
        List<String> seen = List.of("[0] []", "[0] [1]", "[0, 2] [1]", "[2] [1]", "[] [1]");
        List<String> failures = new ArrayList<>();
        Set<String> found = new TreeSet<>();
        long[] count = {0};
        file.crashStates(CrashOptions.defaults()).forEach(s -> {
            count[0]++;
            try {
                String opened = slotsOpenedBy(s.image(), PASSWORD) + " " + slotsOpenedBy(s.image(), NEW);
                found.add(opened);
                LuksHeader header = LuksHeader.parse(s.image());
                long enabled = header.keySlots().stream().filter(LuksHeader.KeySlot::active).count();
                if (!seen.contains(opened) || enabled != opened.replaceAll("[^0-9]", "").length()) {
                    failures.add(s.description() + ": " + opened + " with " + enabled + " slots enabled");
                }
            } catch (IOException e) {
                failures.add(s.description() + ": " + e);
            }
        });
        assertTrue(failures.isEmpty(), failures.size() + " of " + count[0] + " crash states fail, e.g. "
                + failures.stream().limit(3).toList());
        assertEquals(new TreeSet<>(seen), found);
        System.out.println("key slot changes: " + count[0] + " crash states pass");
    }
}
