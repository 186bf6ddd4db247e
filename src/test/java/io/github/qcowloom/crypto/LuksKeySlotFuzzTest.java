package io.github.qcowloom.crypto;

import static io.github.qcowloom.crypto.LuksFixtures.PASSWORD;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.testing.FuzzInputs;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeAll;

/**
 * A fuzz target for amend's key slot changes on a hostile LUKS header area ({@link LuksKeySlotChange}): the input's
 * first byte picks the change and its slot, the rest is the area (the header, then the slots' material), bounded
 * as qcow2's crypto header extension bounds it. Only typed {@link ImageException}s may end a run; and a change that
 * succeeds must leave what it says and nothing else: one added slot that the new passphrase opens, the erased slots
 * disabled, every other slot as it was. Headers
 * asking for more than 2^16 PBKDF2 rounds are passed over (each unlock is run, instrumented). {@code ./mvnw test
 * -Pfuzz -Dfuzz.class=LuksKeySlotFuzzTest -Dfuzz.target=keySlotChanges} fuzzes it.
 */
class LuksKeySlotFuzzTest {
    private static final byte[] NEW = "battery staple".getBytes(StandardCharsets.UTF_8);
    private static final long ROUNDS = 1 << 16;

    @BeforeAll
    static void seeds() throws IOException {
        LuksFormat.Created xts = LuksFixtures.create(LuksOptions.defaults());
        LuksFormat.Created cbc = LuksFixtures.create(LuksFixtures.options(LuksCipher.AES_128, LuksCipherMode.CBC,
                LuksIvGen.ESSIV, LuksHash.SHA256, LuksHash.SHA1));
        // A second slot under NEW, so that erases succeed unforced.
        byte[] two = xts.headerArea().clone();
        new LuksKeySlotChange("active", null, null, NEW::clone, null).apply(Arrays.copyOf(two, LuksHeader.SIZE),
                area(two), xts.masterKey()::clone, false, LuksFixtures.RANDOM, LuksFixtures.MINIMUM_RATE);
        // The first byte: the change (bits 0-1), --force (2), a slot given (3) and its number (4-7).
        int[] ops = {0, 0 | 8 | 1 << 4, 0 | 4 | 8, 1 | 8, 1 | 4 | 8, 1 | 8 | 1 << 4, 2, 2 | 4, 3 | 8 | 2 << 4};
        for (int op : ops) {
            FuzzInputs.seed(LuksKeySlotFuzzTest.class, "keySlotChanges", "xts-" + op, withOp(op, xts.headerArea()));
            FuzzInputs.seed(LuksKeySlotFuzzTest.class, "keySlotChanges", "cbc-" + op, withOp(op, cbc.headerArea()));
            FuzzInputs.seed(LuksKeySlotFuzzTest.class, "keySlotChanges", "two-" + op, withOp(op, two));
        }
    }

    private static byte[] withOp(int op, byte[] area) {
        byte[] input = new byte[1 + area.length];
        input[0] = (byte) op;
        System.arraycopy(area, 0, input, 1, area.length);
        return input;
    }

    /** {@code area} as qcow2's crypto header extension bounds it: past its end, refused as corrupt. */
    private static LuksHeaderArea area(byte[] area) {
        return new LuksHeaderArea() {
            @Override
            public void read(long at, byte[] dst) throws IOException {
                System.arraycopy(area, position(at, dst.length), dst, 0, dst.length);
            }

            @Override
            public void write(long at, byte[] src) throws IOException {
                System.arraycopy(src, 0, area, position(at, src.length), src.length);
            }

            @Override
            public void sync(long at, long length) throws IOException {
                position(at, length);
            }

            private int position(long at, long length) throws CorruptImageException {
                if (at < 0 || length < 0 || at > area.length - length) {
                    throw new CorruptImageException("Request for data outside of extension header");
                }
                return (int) at;
            }
        };
    }

    @FuzzTest
    void keySlotChanges(byte[] data) throws IOException {
        if (data.length < 1 + LuksHeader.SIZE) {
            return;
        }
        int op = data[0] & 3;
        boolean force = (data[0] & 4) != 0;
        String slot = (data[0] & 8) != 0 ? Integer.toString((data[0] >> 4) & 15) : null; // 8 to 15 out of range
        byte[] original = Arrays.copyOfRange(data, 1, data.length);
        byte[] area = original.clone();
        LuksHeader header;
        try {
            header = LuksHeader.parse(area);
        } catch (ImageException e) {
            return;
        }
        if (LuksFormat.unlockRounds(header) > ROUNDS) {
            return;
        }
        LuksKeySlotChange change = switch (op) {
            case 0 -> new LuksKeySlotChange("active", slot, null, NEW::clone, null);
            case 1 -> new LuksKeySlotChange("inactive", slot, null, null, null);
            case 2 -> new LuksKeySlotChange("inactive", slot, null, null, PASSWORD::clone);
            default -> new LuksKeySlotChange("active", slot, "0", NEW::clone, null);
        };
        LuksHeaderArea bounded = area(area);
        SecureRandom random;
        try { // seeded before its first use, so that a finding replays
            random = SecureRandom.getInstance("SHA1PRNG");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        random.setSeed(Arrays.hashCode(data));
        LuksHeader after;
        try {
            after = change.apply(Arrays.copyOf(area, LuksHeader.SIZE), bounded,
                    () -> LuksFormat.unlock(header, bounded, PASSWORD), force, random, LuksFixtures.MINIMUM_RATE);
        } catch (ImageException e) {
            return; // refused, in typed words
        }
        if (!Arrays.equals(after.toBytes(), LuksHeader.parse(area).toBytes())) {
            throw new AssertionError("the header returned is not the one written");
        }
        int named = slot == null ? -1 : Integer.parseInt(slot);
        int changed = -1;
        for (int i = 0; i < LuksHeader.SLOT_COUNT; i++) {
            LuksHeader.KeySlot was = header.keySlots().get(i);
            LuksHeader.KeySlot is = after.keySlots().get(i);
            boolean target = switch (op) {
                case 1 -> i == named;
                case 2 -> LuksFormat.unlockSlot(header, area(original), PASSWORD, i) != null;
                default -> named >= 0 ? i == named : is.active() && !was.active();
            };
            if (!target) {
                if (!is.equals(was)) {
                    throw new AssertionError("slot " + i + " changed, which the change did not name");
                }
                continue;
            }
            if (op == 1 || op == 2) {
                if (is.active()) {
                    throw new AssertionError("slot " + i + " still enabled after its erase");
                }
            } else {
                if (changed >= 0) {
                    throw new AssertionError("slots " + changed + " and " + i + " both added");
                }
                changed = i;
                if (LuksFormat.unlockSlot(after, bounded, NEW, i) == null) {
                    throw new AssertionError("slot " + i + " added, and the new passphrase does not open it");
                }
            }
        }
        if ((op == 0 || op == 3) && changed < 0) {
            throw new AssertionError("an add that succeeded added no slot");
        }
    }
}
