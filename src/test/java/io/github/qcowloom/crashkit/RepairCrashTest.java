package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.CountingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.testing.Images;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Invariant h of reference/crash.md: a crash, or an I/O error, while a dirty image is being repaired on open still
 * leaves an image that opens, repairs, checks clean and shows the guest exactly what it showed before the repair.
 */
class RepairCrashTest {
    @TempDir
    Path dir;

    /** A lazy-refcounts image killed after a flush and some unflushed writes: dirty, refcounts behind. */
    private static byte[] dirtyImage() throws IOException {
        CrashDisk d = new CrashDisk(CreateOptions.defaults(2 << 20).withClusterSize(4096).withLazyRefcounts(true),
                false);
        for (int i = 0; i < 8; i++) {
            d.write((long) i * 65536, 4096);
        }
        d.flush();
        d.write(1 << 20, 8192);
        d.discard(0, 4096);
        return d.sim.currentImage(); // a process kill: every issued write is there, the refcounts are not
    }

    private static byte[] guestView(byte[] image) throws IOException {
        try (Qcow2Image img = Qcow2Image.open(new MemoryStorage(image), null, OpenOptions.readOnlyDefaults())) {
            return Images.readAll(img, 1 << 20);
        }
    }

    /** Opens (repairing), closes, and checks the image clean with the guest view unchanged. */
    private void assertRepairable(byte[] image, byte[] expectedGuest, String what) throws IOException {
        MemoryStorage storage = new MemoryStorage(image);
        try (Qcow2Image img = Qcow2Image.open(storage, null, OpenOptions.readWriteDefaults().withPool(false))) {
            assertArrayEquals(expectedGuest, Images.readAll(img, 1 << 20), what + ": guest data changed");
        }
        Path file = dir.resolve("state.qcow2");
        Files.write(file, storage.snapshot());
        CheckResult r = ImageChecker.check(file, "state.qcow2");
        assertEquals(0, r.corruptions(), what + ": " + r.messages());
        assertEquals(0, r.leaks(), what + ": " + r.messages());
    }

    @Test
    void aCrashAtAnyPointOfTheRepairLeavesARepairableImage() throws IOException {
        byte[] dirty = dirtyImage();
        byte[] expected = guestView(dirty);
        CrashSimStorage sim = new CrashSimStorage(dirty);
        try (Qcow2Image img = Qcow2Image.open(sim, null, OpenOptions.readWriteDefaults().withPool(false))) {
            assertArrayEquals(expected, Images.readAll(img, 1 << 20));
        }
        List<CrashState> states = sim.crashStates(CrashOptions.defaults()).toList();
        assertTrue(states.size() > 3, "the repair should write and flush several times: " + states.size());
        for (CrashState s : states) {
            assertRepairable(s.image(), expected, s.description());
        }
    }

    @Test
    void anIoErrorAtAnyWriteOfTheRepairLeavesARepairableImage() throws IOException {
        byte[] dirty = dirtyImage();
        byte[] expected = guestView(dirty);
        int failures = 0;
        for (int n = 1; n < 200; n++) {
            MemoryStorage memory = new MemoryStorage(dirty);
            FaultStorage faulty = new FaultStorage(memory).failAt(IoKind.WRITE, n, Errno.EIO, false);
            try (Qcow2Image img = Qcow2Image.open(faulty, null, OpenOptions.readWriteDefaults().withPool(false))) {
                Images.readAll(img, 1 << 20);
            } catch (IOException injected) {
                // The repair (or the close) failed at write n: what is on disk must still be repairable.
            }
            if (faulty.faultsInjected() == 0) {
                break; // the repair makes fewer than n writes: every write has had its turn
            }
            failures++;
            assertRepairable(memory.snapshot(), expected, "EIO from write " + n + " on");
        }
        // Every write a clean repair makes has had an error injected at it.
        CountingStorage counting = new CountingStorage(new MemoryStorage(dirty));
        try (Qcow2Image img = Qcow2Image.open(counting, null, OpenOptions.readWriteDefaults().withPool(false))) {
            Images.readAll(img, 1 << 20);
        }
        assertTrue(counting.counts().writes() > 0, "the dirty image needed no repair");
        assertEquals(counting.counts().writes(), failures);
    }
}
