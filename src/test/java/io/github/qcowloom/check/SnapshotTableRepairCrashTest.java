package io.github.qcowloom.check;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.crashkit.CrashMode;
import io.github.qcowloom.crashkit.CrashOptions;
import io.github.qcowloom.crashkit.CrashSimStorage;
import io.github.qcowloom.crashkit.CrashState;
import io.github.qcowloom.crashkit.Errno;
import io.github.qcowloom.crashkit.FaultStorage;
import io.github.qcowloom.crashkit.IoKind;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.testing.Images;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * check -r all writing a snapshot table anew (incomplete v3 entries, iotest 261) is crash-safe: a crash at any
 * point (sector-atomic or with torn appends), or an I/O error at any write, leaves the old table or the new one,
 * the guest data untouched, at worst leaked clusters, and an image a second repair makes clean.
 */
class SnapshotTableRepairCrashTest {
    private static final int CLUSTER = 65536;
    private static final long SIZE = 1 << 20;

    @TempDir
    Path dir;

    /**
     * A v3 image with guest data and a snapshot table in a cluster of its own: three entries without L1 tables,
     * the first and last without the 16 bytes of extra data v3 requires, the middle one with unknown extra data.
     */
    private byte[] damagedImage() throws IOException {
        Path file = dir.resolve("base.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(SIZE));
        try (Qcow2Image img = Qcow2Image.open(file, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] data = new byte[8192];
            Arrays.fill(data, (byte) 0x5a);
            img.write(4096, ByteBuffer.wrap(data));
            img.write(SIZE / 2, ByteBuffer.wrap(data, 0, 4096));
        }
        byte[] unknown = Arrays.copyOf(Snapshot.extraData(0, SIZE, -1), 50);
        unknown[40] = 42;
        byte[] table = SnapshotTable.encode(List.of(entry("1", "sn0", new byte[0]), entry("2", "sn1", unknown),
                entry("3", "sn2", new byte[8])));
        byte[] image = Files.readAllBytes(file);
        long cluster = Bytes.alignUp(image.length, CLUSTER) / CLUSTER;
        image = Arrays.copyOf(image, (int) ((cluster + 1) * CLUSTER));
        System.arraycopy(table, 0, image, (int) (cluster * CLUSTER), table.length);
        long refblock = Bytes.getLong(image, (int) Bytes.getLong(image, 48));
        Bytes.putShort(image, (int) (refblock + 2 * cluster), 1);
        Bytes.putInt(image, 60, 3);
        Bytes.putLong(image, 64, cluster * CLUSTER);
        return image;
    }

    private static Snapshot entry(String id, String name, byte[] extra) {
        return new Snapshot(0, 0, id, name, 1700000000, 0, 0, 0, extra);
    }

    private static List<Snapshot> table(byte[] image) throws IOException {
        MemoryStorage m = MemoryStorage.readOnlyCopy(image);
        return ImageMetadata.readSnapshots(m, ImageMetadata.readHeader(m));
    }

    private static byte[] guest(byte[] image) throws IOException {
        try (Qcow2Image img = Qcow2Image.open(MemoryStorage.readOnlyCopy(image), null,
                OpenOptions.readOnlyDefaults())) {
            return Images.readAll(img, 1 << 16);
        }
    }

    /**
     * The image holds the old table or the repaired one; its only corruptions are the old table's incomplete
     * entries; the guest data is as before; and a repair of it ends clean, without leaks.
     */
    private static void assertRepairable(byte[] image, List<Snapshot> old, List<Snapshot> repaired,
            byte[] guest, String what) throws IOException {
        List<Snapshot> table = table(image);
        assertTrue(table.equals(old) || table.equals(repaired), what + ": " + table);
        CheckResult r = ImageChecker.check(MemoryStorage.readOnlyCopy(image), "state");
        assertEquals(table.equals(old) ? 2 : 0, r.corruptions(), what + ": " + r.messages());
        assertArrayEquals(guest, guest(image), what + ": guest data changed");
        MemoryStorage m = new MemoryStorage(image);
        ImageChecker.repair(m, "state", RepairMode.ALL);
        CheckResult after = ImageChecker.check(m, "state");
        assertEquals(0, after.corruptions() + after.leaks(), what + " then repaired: " + after.messages());
        assertEquals(repaired, table(m.snapshot()), what + " then repaired");
    }

    @Test
    void aCrashAtAnyPointOfTheRewriteLeavesTheOldTableOrTheNew() throws IOException {
        byte[] damaged = damagedImage();
        List<Snapshot> old = table(damaged);
        byte[] guest = guest(damaged);
        CrashSimStorage sim = new CrashSimStorage(damaged);
        RepairOutcome o = ImageChecker.repair(sim, "damaged", RepairMode.ALL);
        assertEquals(2, o.result().corruptionsFixed(), o.messages().toString());
        assertEquals(0, o.result().corruptions() + o.result().leaks());
        List<Snapshot> repaired = table(sim.currentImage());
        assertNotEquals(old, repaired);
        assertEquals(List.of(24, 50, 24), repaired.stream().map(s -> s.extraData().length).toList());
        assertEquals(42, repaired.get(1).extraData()[40], "unknown extra data is kept");
        for (CrashMode mode : List.of(CrashMode.SECTOR_ATOMIC, CrashMode.TORN_APPENDS)) {
            List<CrashState> states = sim.crashStates(CrashOptions.defaults().withMode(mode)).toList();
            assertTrue(states.size() > 4, "the rewrite should write and sync several times: " + states.size());
            for (CrashState s : states) {
                assertRepairable(s.image(), old, repaired, guest, mode + ", " + s.description());
            }
        }
    }

    @Test
    void anIoErrorAtAnyWriteOfTheRewriteLeavesARepairableImage() throws IOException {
        byte[] damaged = damagedImage();
        List<Snapshot> old = table(damaged);
        byte[] guest = guest(damaged);
        MemoryStorage clean = new MemoryStorage(damaged);
        ImageChecker.repair(clean, "damaged", RepairMode.ALL);
        List<Snapshot> repaired = table(clean.snapshot());
        int n = 1;
        for (; n < 100; n++) {
            MemoryStorage memory = new MemoryStorage(damaged);
            FaultStorage faulty = new FaultStorage(memory).failAt(IoKind.WRITE, n, Errno.EIO, false);
            try {
                ImageChecker.repair(faulty, "damaged", RepairMode.ALL);
            } catch (IOException injected) {
                // The repair failed at write n: what is on disk must still be repairable.
            }
            if (faulty.faultsInjected() == 0) {
                break; // the repair makes fewer than n writes: every write has had its turn
            }
            assertRepairable(memory.snapshot(), old, repaired, guest, "EIO from write " + n + " on");
        }
        assertTrue(n > 4, "the repair should write several times: " + (n - 1));
    }
}
