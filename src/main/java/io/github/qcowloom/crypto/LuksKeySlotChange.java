package io.github.qcowloom.crypto;

import io.github.qcowloom.api.ChainEncryption.Passphrase;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.io.IOException;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An edit of a LUKS volume's key slots, as qemu-img amend makes it with {@code encrypt.*} options (QEMU's
 * qcrypto_block_luks_amend_options): {@code state=active} stores the master key, which the passphrase of the
 * volume's open unlocks, in a free slot (or the one {@code keyslot} names) under {@code new-secret}, its PBKDF2
 * iterations timed to {@code iter-time}; {@code state=inactive} erases slot {@code keyslot}, or every slot that {@code
 * old-secret} opens. Refused in QEMU's words and order, and, unless forced, where it would overwrite an active slot,
 * erase an erased one or erase the last one (which loses the data for good).
 *
 * <p>Each slot is written as QEMU writes it, in an order a crash cannot make worse: an added slot's key material,
 * then the header that enables it; an erased slot's header, then random bytes over its material, 16 times, each
 * pass synced so that it reaches the disk. An overwrite of an active slot ({@code --force}) that a crash cuts short
 * loses that slot, as in QEMU.
 *
 * <p>The options are taken as given and read as QEMU's QAPI visitor reads them, once the image is known to be LUKS:
 * {@code state} first, then the numbers (QAPI ints, which {@code -1} is and {@code 18446744073709551615} is not).
 *
 * @param state "active" or "inactive" as given, null when not given
 * @param keyslot the slot as given, null when not given
 * @param iterTimeMillis the PBKDF2 time for a new slot as given, null when not given (2 s)
 * @param newSecret the passphrase of the slot to add, null when not given
 * @param oldSecret the passphrase of the slots to erase, null when not given
 */
public record LuksKeySlotChange(String state, String keyslot, String iterTimeMillis, Passphrase newSecret,
        Passphrase oldSecret) {
    /** QEMU's QCRYPTO_BLOCK_LUKS_DEFAULT_ITER_TIME_MS. */
    private static final long DEFAULT_ITER_TIME_MILLIS = 2000;
    /** QEMU's QCRYPTO_BLOCK_LUKS_ERASE_ITERATIONS. */
    private static final int ERASE_PASSES = 16;

    /** The volume's master key, as the passphrase it was opened with unlocks it; an array the caller wipes. */
    @FunctionalInterface
    public interface OpenKey {
        byte[] masterKey() throws IOException;
    }

    /**
     * Applies the change to the volume whose header is {@code headerBytes} in {@code area}.
     *
     * @param force QEMU's --force: overwrite an active slot, erase an erased one or the last
     * @param rate how fast PBKDF2 runs here, for a new slot's iterations
     * @return the header as it is now
     */
    public LuksHeader apply(byte[] headerBytes, LuksHeaderArea area, OpenKey openKey, boolean force,
            SecureRandom random, Pbkdf2.Rate rate) throws IOException {
        LuksHeader header = LuksHeader.parse(headerBytes);
        // QEMU's QAPI visitor, which reads the options after the qcow2 driver has looked at them, in their order.
        boolean add = switch (state == null ? "" : state) {
            case "active" -> true;
            case "inactive" -> false;
            case "" -> throw new ImageException("Parameter 'state' is missing");
            default -> throw new ImageException("Parameter 'state' does not accept value '" + state + "'");
        };
        Long slot = qapiInt("keyslot", keyslot);
        Long iterTime = qapiInt("iter-time", iterTimeMillis);
        return add ? add(header, headerBytes, area, slot, iterTime, openKey, force, random, rate)
                : erase(header, headerBytes, area, slot, iterTime, force, random);
    }

    /**
     * {@code text} as QAPI reads an int (qemu_strtoi64, base 0: decimal, 0x hexadecimal, 0 octal; a sign; leading
     * white space), or null for null. The value has passed QemuOpts' reading of a number already.
     */
    private static Long qapiInt(String name, String text) throws ImageException {
        if (text == null) {
            return null;
        }
        try {
            String t = text.stripLeading();
            if (t.startsWith("#") || t.startsWith("-#") || t.startsWith("+#")) { // Long.decode's, not C's
                throw new NumberFormatException(t);
            }
            return Long.decode(t);
        } catch (NumberFormatException e) {
            throw new ImageException("Parameter '" + name + "' expects integer");
        }
    }

    /** qcrypto_block_luks_amend_add_keyslot. */
    private LuksHeader add(LuksHeader header, byte[] headerBytes, LuksHeaderArea area, Long slot, Long iterTime,
            OpenKey openKey, boolean force, SecureRandom random, Pbkdf2.Rate rate) throws IOException {
        if (newSecret == null) {
            throw new ImageException("'new-secret' is required to activate a keyslot");
        }
        if (oldSecret != null) {
            throw new ImageException("'old-secret' must not be given when activating keyslots");
        }
        int index;
        if (slot != null) {
            index = (int) (long) slot;
            if (index < 0 || index >= LuksHeader.SLOT_COUNT) { // QEMU prints it with %u here
                throw new ImageException("Invalid keyslot " + Integer.toUnsignedString(index)
                        + " specified, must be between 0 and " + (LuksHeader.SLOT_COUNT - 1));
            }
        } else {
            index = 0;
            while (index < LuksHeader.SLOT_COUNT && header.keySlots().get(index).active()) {
                index++;
            }
            if (index == LuksHeader.SLOT_COUNT) {
                throw new ImageException("Can't add a keyslot - all keyslots are in use");
            }
        }
        if (!force && header.keySlots().get(index).active()) {
            throw new ImageException("Refusing to overwrite active keyslot " + index + " - please erase it first");
        }
        byte[] masterKey = openKey.masterKey();
        byte[] given = null;
        byte[] password = null;
        try {
            given = newSecret.bytes();
            password = LuksFormat.uptoNul(given);
            try {
                return storeKey(header, headerBytes, area, index, password, masterKey,
                        iterTime == null ? DEFAULT_ITER_TIME_MILLIS : iterTime, random, rate);
            } catch (ImageException e) {
                throw hinted(e, "Failed to write to keyslot " + index);
            }
        } finally {
            wipe(masterKey, given, password);
        }
    }

    private static void wipe(byte[]... secrets) {
        for (byte[] secret : secrets) {
            if (secret != null) {
                Arrays.fill(secret, (byte) 0);
            }
        }
    }

    /**
     * {@code e} with QEMU's hint on the next line, as qemu-img prints an error whose hint was appended; a typed
     * refusal (a subclass) keeps its own words.
     */
    private static ImageException hinted(ImageException e, String hint) {
        String message = e.getMessage() + "\n" + hint;
        return switch (e) {
            case CorruptImageException c -> new CorruptImageException(message, c);
            case UnsupportedFeatureException u -> u; // this driver's own bound, not QEMU's
            default -> new ImageException(message, e);
        };
    }

    /** qcrypto_block_luks_store_key: a new salt and iteration count, the key material, then the header. */
    private static LuksHeader storeKey(LuksHeader header, byte[] headerBytes, LuksHeaderArea area, int index,
            byte[] password, byte[] masterKey, long iterTime, SecureRandom random, Pbkdf2.Rate rate)
            throws IOException {
        LuksAlgorithms algorithms = header.algorithms();
        LuksHeader.KeySlot old = header.keySlots().get(index);
        byte[] salt = LuksFormat.randomBytes(random, LuksHeader.SALT_LENGTH);
        long iterations = LuksFormat.iterations(rate.iterationsPerSecond(algorithms.hash(),
                header.masterKeyLength()), iterTime, 1);
        LuksHeader.KeySlot slot = LuksHeader.KeySlot.enabled(iterations, salt, old.keyOffsetSector());
        byte[] newBytes = LuksHeader.withKeySlot(headerBytes, index, slot);
        LuksHeader changed = LuksHeader.parse(newBytes);
        // A slot so slow that no open here would try it (see LuksFormat.MAX_ROUNDS), refused before it is derived.
        LuksFormat.requireBoundedWork(LuksFormat.unlockRounds(changed));
        byte[] keyMaterial = LuksFormat.sealedKeyMaterial(algorithms, password, salt, iterations, masterKey, random);
        try {
            area.write(slot.keyOffset(), keyMaterial);
            area.sync(slot.keyOffset(), keyMaterial.length);
        } finally {
            wipe(keyMaterial);
        }
        area.write(0, newBytes);
        area.sync(0, newBytes.length);
        return changed;
    }

    /** qcrypto_block_luks_amend_erase_keyslots. */
    private LuksHeader erase(LuksHeader header, byte[] headerBytes, LuksHeaderArea area, Long slot, Long iterTime,
            boolean force, SecureRandom random) throws IOException {
        if (newSecret != null) {
            throw new ImageException("'new-secret' must not be given when erasing keyslots");
        }
        if (iterTime != null) {
            throw new ImageException("'iter-time' must not be given when erasing keyslots");
        }
        byte[] given = oldSecret == null ? null : oldSecret.bytes();
        byte[] password = given == null ? null : LuksFormat.uptoNul(given);
        try {
            List<Integer> toErase = new ArrayList<>();
            long active = header.keySlots().stream().filter(LuksHeader.KeySlot::active).count();
            if (slot != null) {
                int index = (int) (long) slot;
                if (index < 0 || index >= LuksHeader.SLOT_COUNT) {
                    throw new ImageException("Invalid keyslot " + index + " specified, must be between 0 and "
                            + (LuksHeader.SLOT_COUNT - 1));
                }
                if (password != null && !opens(header, area, password, index)) {
                    throw new ImageException("Given keyslot " + index
                            + " doesn't contain the given old password for erase operation");
                }
                if (!force && !header.keySlots().get(index).active()) {
                    throw new ImageException("Given keyslot " + index + " is already erased (inactive) ");
                }
                if (!force && active == 1) {
                    throw new ImageException("Attempt to erase the only active keyslot " + index
                            + " which will erase all the data in the image irreversibly - refusing operation");
                }
                toErase.add(index);
            } else if (password != null) {
                for (int i = 0; i < LuksHeader.SLOT_COUNT; i++) {
                    if (opens(header, area, password, i)) {
                        toErase.add(i);
                    }
                }
                if (toErase.isEmpty()) {
                    throw new ImageException("No keyslots match given (old) password for erase operation");
                }
                if (!force && toErase.size() == active) {
                    throw new ImageException("All the active keyslots match the (old) password that was given and"
                            + " erasing them will erase all the data in the image irreversibly - refusing operation");
                }
            } else {
                throw new ImageException("To erase keyslot(s), either explicit keyslot index or the password"
                        + " currently contained in them must be given");
            }
            byte[] bytes = headerBytes;
            for (int index : toErase) {
                try {
                    bytes = eraseKey(header, bytes, area, index, random);
                } catch (ImageException e) {
                    throw hinted(e, "Failed to erase keyslot " + index);
                }
            }
            return LuksHeader.parse(bytes);
        } finally {
            wipe(given, password);
        }
    }

    /** Whether {@code password} unlocks slot {@code index} (a disabled slot opens with no password). */
    private static boolean opens(LuksHeader header, LuksHeaderArea area, byte[] password, int index)
            throws IOException {
        byte[] masterKey = LuksFormat.unlockSlot(header, area, password, index);
        if (masterKey == null) {
            return false;
        }
        Arrays.fill(masterKey, (byte) 0);
        return true;
    }

    /** qcrypto_block_luks_erase_key: the slot disabled in the header, then its material overwritten. */
    private static byte[] eraseKey(LuksHeader header, byte[] headerBytes, LuksHeaderArea area, int index,
            SecureRandom random) throws IOException {
        LuksHeader.KeySlot slot = header.keySlots().get(index);
        byte[] newBytes = LuksHeader.withKeySlot(headerBytes, index,
                LuksHeader.KeySlot.disabled(slot.keyOffsetSector()));
        area.write(0, newBytes);
        area.sync(0, newBytes.length);
        byte[] garbage = new byte[Math.multiplyExact(header.masterKeyLength(), (int) slot.stripes())];
        for (int pass = 0; pass < ERASE_PASSES; pass++) {
            random.nextBytes(garbage);
            area.write(slot.keyOffset(), garbage);
            area.sync(slot.keyOffset(), garbage.length);
        }
        return newBytes;
    }
}
