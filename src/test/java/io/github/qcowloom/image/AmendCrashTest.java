package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.crashkit.CrashOptions;
import io.github.qcowloom.crashkit.CrashSimStorage;
import io.github.qcowloom.crashkit.CrashState;
import io.github.qcowloom.crashkit.Errno;
import io.github.qcowloom.crashkit.FaultStorage;
import io.github.qcowloom.crashkit.IoKind;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.snapshot.Snapshots;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.testing.Images;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Invariant h of reference/crash.md for amend's two rewrites of an image's tables, a refcount width change and a
 * downgrade's expansion of zero clusters: at every crash state the image opens, checks without corruption (and,
 * for the width change, without leaks: its new structures lie where nothing counts them until the switch), and
 * shows the guest and the snapshot what they showed before. The image holds clusters a snapshot shares, zero
 * clusters with and without a host cluster (one shared with the snapshot), and freed clusters inside the file.
 */
class AmendCrashTest {
    private static final int SIZE = 1 << 20;

    @TempDir
    Path dir;

    /** The test image; with {@code backed}, over a backing file of 0x5a bytes in {@link #dir}. */
    private byte[] image(boolean backed) throws IOException {
        CreateOptions create = CreateOptions.defaults(SIZE).withClusterSize(4096);
        if (backed) {
            Path base = dir.resolve("base.qcow2");
            ImageCreator.create(base, CreateOptions.defaults(SIZE).withClusterSize(4096));
            try (Qcow2Image img = Qcow2Image.open(base, OpenOptions.readWriteDefaults())) {
                img.write(0, ByteBuffer.wrap(pattern(SIZE, 0x5a)));
            }
            create = create.withBacking("base.qcow2", "qcow2");
        }
        Path file = dir.resolve("a.qcow2");
        ImageCreator.create(file, create);
        try (Qcow2Image img = Qcow2Image.open(file, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(pattern(64 << 10, 1)));
            img.write(256 << 10, ByteBuffer.wrap(pattern(16 << 10, 2)));
            img.writeZeroes(512 << 10, 8 << 10, false); // zero clusters without a host cluster
            Snapshots.create(img, "s1");
            img.writeZeroes(0, 8 << 10, false); // zero clusters keeping a host cluster the snapshot shares
            img.write(128 << 10, ByteBuffer.wrap(pattern(16 << 10, 3)));
            img.writeZeroes(128 << 10, 8 << 10, false); // zero clusters keeping their own host cluster
            img.write(640 << 10, ByteBuffer.wrap(pattern(16 << 10, 4)));
            img.discard(640 << 10, 16 << 10); // free clusters inside the file
        }
        return Files.readAllBytes(file);
    }

    private static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (seed * 31 + i / 512);
        }
        return b;
    }

    /** What the guest reads, then what the snapshot holds. */
    private List<byte[]> views(byte[] image) throws IOException {
        try (Qcow2Image img = Qcow2Image.open(new MemoryStorage(image), dir, OpenOptions.readOnlyDefaults())) {
            byte[] guest = Images.readAll(img, 64 << 10);
            MemoryStorage copy = new MemoryStorage(image);
            try (Qcow2Image applied = Qcow2Image.open(copy, dir, OpenOptions.readWriteDefaults().withPool(false))) {
                Snapshots.apply(applied, Snapshots.list(applied).get(0));
                return List.of(guest, Images.readAll(applied, 64 << 10));
            }
        }
    }

    private CheckResult check(byte[] image) throws IOException {
        Path file = dir.resolve("state.qcow2");
        Files.write(file, image);
        return ImageChecker.check(file, "state.qcow2");
    }

    @ParameterizedTest(name = "refcount_bits={0}")
    @ValueSource(ints = {2, 8, 64})
    void aWidthChangeCrashedAnywhereLeavesTheOldOrTheNewStructures(int bits) throws IOException {
        byte[] before = image(false);
        List<byte[]> expected = views(before);
        CrashSimStorage sim = new CrashSimStorage(before);
        List<Double> progress = new ArrayList<>();
        RefcountWidthChange.apply(sim, bits, progress::add);
        for (int i = 1; i < progress.size(); i++) {
            assertTrue(progress.get(i) >= progress.get(i - 1) && progress.get(i) <= 1, "progress " + progress);
        }
        assertTrue(progress.size() > 1 && progress.get(progress.size() - 1) == 1.0, "progress " + progress);
        assertEquals(bits, Header.parse(sim.currentImage(), sim.currentImage().length).refcountBits());
        assertCrashStates(sim, expected, true);
    }

    @ParameterizedTest(name = "backing file: {0}")
    @ValueSource(booleans = {false, true})
    void aDowngradeCrashedAnywhereReadsTheSame(boolean backed) throws IOException {
        byte[] before = image(backed);
        List<byte[]> expected = views(before);
        CrashSimStorage sim = new CrashSimStorage(before);
        VersionDowngrade.expandZeroClusters(sim, done -> { });
        VersionDowngrade.writeVersion2Header(sim);
        assertEquals(2, Header.parse(sim.currentImage(), sim.currentImage().length).version());
        assertCrashStates(sim, expected, false);
    }

    /**
     * A snapshot's zeroed cluster whose data the active image has again (it applied an older snapshot, since
     * deleted): the snapshot's table gives the cluster up, and the active entry left alone with it gets its COPIED
     * flag. In between the image is dirty; every crash state opens (repairing it) with the same data.
     */
    @Test
    void aDowngradeGivingBackASharedClusterCrashedAnywhereIsRepairable() throws IOException {
        Path file = dir.resolve("c.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(SIZE).withClusterSize(4096));
        try (Qcow2Image img = Qcow2Image.open(file, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(pattern(64 << 10, 1)));
            Snapshots.create(img, "s1");
            img.writeZeroes(0, 16 << 10, false);
            Snapshots.create(img, "s2");
            Snapshots.apply(img, Snapshots.findByName(Snapshots.list(img), "s1").orElseThrow());
            Snapshots.delete(img, Snapshots.findByName(Snapshots.list(img), "s1").orElseThrow());
        }
        byte[] before = Files.readAllBytes(file);
        List<byte[]> expected = views(before);
        CrashSimStorage sim = new CrashSimStorage(before);
        VersionDowngrade.expandZeroClusters(sim, done -> { });
        Header after = Header.parse(sim.currentImage(), sim.currentImage().length);
        assertTrue(!after.dirty(), "clean once the COPIED flags are set");
        CheckResult r = check(sim.currentImage());
        assertEquals(0, r.corruptions() + r.leaks(), r.messages().toString());
        assertTrue(sim.crashStates(CrashOptions.defaults()).anyMatch(s -> dirty(s.image())),
                "the snapshot's table should have given a cluster back (the image dirty meanwhile)");
        assertCrashStates(sim, expected, false);
    }

    /**
     * A zero cluster whose kept host offset is misaligned, or names metadata, is refused before anything is zeroed,
     * in QEMU's words where it has them, and the image is marked corrupt, as QEMU marks it.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"unaligned", "an L1 table"})
    void aCorruptZeroClusterIsRefused(String damage) throws IOException {
        Path file = dir.resolve("z.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(SIZE).withClusterSize(4096));
        try (Qcow2Image img = Qcow2Image.open(file, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(pattern(4096, 1)));
            img.writeZeroes(0, 4096, false);
        }
        byte[] image = Files.readAllBytes(file);
        Header header = Header.parse(image, image.length);
        int l2 = (int) (Bytes.getLong(image, (int) header.l1TableOffset()) & L1Entry.OFFSET_MASK);
        long entry = Bytes.getLong(image, l2);
        long host = damage.equals("unaligned") ? L2Entry.hostOffset(entry) + 512 : header.l1TableOffset();
        Bytes.putLong(image, l2, host | L2Entry.ZERO);
        MemoryStorage storage = new MemoryStorage(image);
        MetadataCorruptionException e = assertThrows(MetadataCorruptionException.class,
                () -> VersionDowngrade.expandZeroClusters(storage, done -> { }));
        assertTrue(e.getMessage().contains(damage), e.getMessage());
        assertTrue(ImageMetadata.readHeader(storage).corrupt(), "marked corrupt");
    }

    /**
     * With 512-byte clusters one reftable cluster counts 8 MiB of file: an expansion that takes the file past that
     * moves the refcount table, and the version 2 header must name the new one.
     */
    @Test
    void aDowngradeThatMovesTheRefcountTable() throws IOException {
        Path base = dir.resolve("base.qcow2");
        ImageCreator.create(base, CreateOptions.defaults(16 << 20).withClusterSize(512));
        Path file = dir.resolve("a.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(16 << 20).withClusterSize(512)
                .withBacking("base.qcow2", "qcow2"));
        try (Qcow2Image img = Qcow2Image.open(file, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(pattern(7 << 20, 5)));
            img.writeZeroes(8 << 20, 2 << 20, false);
        }
        byte[] before = Files.readAllBytes(file);
        Header old = Header.parse(before, before.length);
        CrashSimStorage sim = new CrashSimStorage(before);
        VersionDowngrade.expandZeroClusters(sim, done -> { });
        VersionDowngrade.writeVersion2Header(sim);
        Header after = Header.parse(sim.currentImage(), sim.currentImage().length);
        assertTrue(after.refcountTableOffset() != old.refcountTableOffset(), "the refcount table should have moved");
        CheckResult r = check(sim.currentImage());
        assertEquals(0, r.corruptions() + r.leaks(), r.messages().toString());
        try (Qcow2Image img = Qcow2Image.open(new MemoryStorage(sim.currentImage()), dir,
                OpenOptions.readOnlyDefaults())) {
            byte[] guest = Images.readAll(img, 1 << 20);
            assertArrayEquals(pattern(7 << 20, 5), Arrays.copyOf(guest, 7 << 20));
            assertArrayEquals(new byte[2 << 20], Arrays.copyOfRange(guest, 8 << 20, 10 << 20));
        }
    }

    private void assertCrashStates(CrashSimStorage sim, List<byte[]> expected, boolean noLeaks) throws IOException {
        List<CrashState> states = sim.crashStates(CrashOptions.defaults()).toList();
        assertTrue(states.size() > 2, "the rewrite should write and sync several times: " + states.size());
        for (CrashState s : states) {
            assertSound(s.image(), expected, noLeaks, s.description());
        }
    }

    /**
     * Checks {@code image} as the next read-write open finds it (repaired if dirty): no corruption (nor leak, with
     * {@code noLeaks}), and the guest's and the snapshot's data as {@code expected}.
     */
    private void assertSound(byte[] image, List<byte[]> expected, boolean noLeaks, String what) throws IOException {
        if (dirty(image)) {
            MemoryStorage repaired = new MemoryStorage(image);
            Qcow2Image.open(repaired, dir, OpenOptions.readWriteDefaults().withPool(false)).close();
            image = repaired.snapshot();
        }
        CheckResult r = check(image);
        assertEquals(0, r.corruptions(), what + ": " + r.messages());
        if (noLeaks) {
            assertEquals(0, r.leaks(), what + ": " + r.messages());
        }
        List<byte[]> views = views(image);
        assertArrayEquals(expected.get(0), views.get(0), what + ": the guest's data");
        assertArrayEquals(expected.get(1), views.get(1), what + ": the snapshot's data");
    }

    private static boolean dirty(byte[] image) {
        try {
            return Header.parse(image, image.length).dirty();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * An I/O error at any write of a width change or a downgrade's expansion leaves a sound image (repaired by an
     * open where it is dirty) with the same data: amend then reports the error and the image is usable.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"refcount_bits=8", "compat=0.10"})
    void anIoErrorAtAnyWriteLeavesASoundImage(String amend) throws IOException {
        byte[] before = image(false);
        List<byte[]> expected = views(before);
        int failures = 0;
        for (int n = 1; n < 1000; n++) {
            MemoryStorage memory = new MemoryStorage(before);
            FaultStorage faulty = new FaultStorage(memory).failAt(IoKind.WRITE, n, Errno.EIO, false);
            try {
                if (amend.startsWith("refcount_bits")) {
                    RefcountWidthChange.apply(faulty, 8, done -> { });
                } else {
                    VersionDowngrade.expandZeroClusters(faulty, done -> { });
                    VersionDowngrade.writeVersion2Header(faulty);
                }
            } catch (IOException injected) {
                // Failed at write n: what is on disk must still be sound.
            }
            if (faulty.faultsInjected() == 0) {
                break; // fewer than n writes: each has had its turn
            }
            failures++;
            assertSound(memory.snapshot(), expected, amend.startsWith("refcount_bits"), "EIO from write " + n + " on");
        }
        assertTrue(failures >= 3, "the rewrite should make several writes: " + failures);
    }
}
