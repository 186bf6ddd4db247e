package io.github.qcowloom.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.crashkit.CrashCheck;
import io.github.qcowloom.crashkit.CrashInvariants;
import io.github.qcowloom.crashkit.CrashOptions;
import io.github.qcowloom.crashkit.CrashSimStorage;
import io.github.qcowloom.crashkit.GuestHistory;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Proof that invariant f and the raw-metadata checks bite on the snapshot code: each package-private switch that
 * breaks one of its ordering rules makes some crash state of a snapshot workload fail; with the switches off, every
 * crash state of the same workload passes. The image is marked dirty during the edits, so these are caught before the
 * repair on open could hide them.
 */
class SnapshotOrderingBitesTest {
    @TempDir
    Path dir;

    /** Writes, then snapshots created and deleted between copy-on-write writes; the failing crash states. */
    private List<CrashCheck> failuresOfWorkload() throws IOException {
        Path file = dir.resolve("b.qcow2");
        Files.deleteIfExists(file);
        ImageCreator.create(file, CreateOptions.defaults(1 << 20).withClusterSize(4096));
        CrashSimStorage sim = new CrashSimStorage(Files.readAllBytes(file));
        GuestHistory history = new GuestHistory(1 << 20);
        try (Qcow2Image img = Qcow2Image.open(sim, null, OpenOptions.readWriteDefaults().withPool(false))) {
            for (long off : new long[] {0, 8192, 65536}) {
                img.write(off, ByteBuffer.wrap(history.write(off, 4096)));
            }
            img.flush();
            history.flushed(sim.flushCount());
            long before = sim.flushCount();
            Snapshots.create(img, "one");
            history.snapshotCreated("one", before, sim.flushCount());
            img.write(8192, ByteBuffer.wrap(history.write(8192, 4096)));
            before = sim.flushCount();
            Snapshots.create(img, "two");
            history.snapshotCreated("two", before, sim.flushCount());
            img.write(0, ByteBuffer.wrap(history.write(0, 4096)));
            before = sim.flushCount();
            Snapshots.delete(img, Snapshots.findByName(Snapshots.list(img), "one").orElseThrow());
            history.snapshotDeleted("one", before, sim.flushCount());
        }
        return sim.crashStates(CrashOptions.defaults()).map(s -> CrashInvariants.check(s, history))
                .filter(c -> !c.ok()).toList();
    }

    @Test
    void theOrderedSnapshotCodeSurvivesEveryCrashState() throws IOException {
        assertEquals(List.of(), failuresOfWorkload());
    }

    @Test
    void refcountsLoweredBeforeTheTableDropsTheSnapshotAreCaught() throws IOException {
        DeleteSnapshot.refcountsBeforeTableForTest = true;
        try {
            List<CrashCheck> failed = failuresOfWorkload();
            assertFalse(failed.isEmpty(), "the broken ordering went unnoticed");
            // The signature of the broken rule: the snapshot is still listed, its clusters' refcounts already lower
            // (and where the new snapshot table reused a freed cluster, the snapshot's tables are overwritten).
            assertTrue(failed.stream().anyMatch(c -> c.message().contains("a refcount below its references")),
                    failed.toString());
        } finally {
            DeleteSnapshot.refcountsBeforeTableForTest = false;
        }
    }

    @Test
    void aHeaderPointingToAnUnsyncedTableIsCaught() throws IOException {
        SnapshotTableWriter.tableUnsyncedForTest = true;
        try {
            List<CrashCheck> failed = failuresOfWorkload();
            assertFalse(failed.isEmpty(), "the broken ordering went unnoticed");
            // The header survives, the table it points to does not: the image does not open, or lists garbage.
            assertTrue(failed.stream().allMatch(c -> c.message().contains("invariant a")
                    || c.message().contains("invariant f")), failed.toString());
            System.out.println("snapshot table unsynced: " + failed.size() + " failing states, e.g. "
                    + failed.get(0).message());
        } finally {
            SnapshotTableWriter.tableUnsyncedForTest = false;
        }
    }
}
