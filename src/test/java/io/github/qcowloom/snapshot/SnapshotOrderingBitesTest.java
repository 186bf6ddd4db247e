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
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Proof that invariant f and the raw-metadata checks bite on the snapshot code: each package-private
 * {@link Breakage} of one of its ordering rules (or of the apply's atomicity) makes some crash state of a snapshot
 * workload fail; without them, every crash state of the same workload passes. The image is marked dirty during the
 * edits, so these are caught before the repair on open could hide them.
 */
class SnapshotOrderingBitesTest {
    @TempDir
    Path dir;

    /**
     * Writes, then snapshots created and deleted (with {@code breakage}) between copy-on-write writes; the failing
     * crash states.
     */
    private List<CrashCheck> failuresOfWorkload(Breakage breakage) throws IOException {
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
            Snapshots.create(img, "one", Instant.now(), breakage);
            history.snapshotCreated("one", before, sim.flushCount());
            img.write(8192, ByteBuffer.wrap(history.write(8192, 4096)));
            before = sim.flushCount();
            Snapshots.create(img, "two", Instant.now(), breakage);
            history.snapshotCreated("two", before, sim.flushCount());
            img.write(0, ByteBuffer.wrap(history.write(0, 4096)));
            before = sim.flushCount();
            Snapshots.delete(img, Snapshots.findByName(Snapshots.list(img), "one").orElseThrow(), breakage);
            history.snapshotDeleted("one", before, sim.flushCount());
        }
        return sim.crashStates(CrashOptions.defaults()).map(s -> CrashInvariants.check(s, history))
                .filter(c -> !c.ok()).toList();
    }

    /**
     * 512-byte clusters, so that the L1 table has many entries: data in the first and the last L2 table's range, a
     * snapshot, both overwritten and flushed, then the snapshot applied (with {@code breakage}). The failing crash
     * states.
     */
    private List<CrashCheck> failuresOfApply(Breakage breakage) throws IOException {
        Path file = dir.resolve("a.qcow2");
        Files.deleteIfExists(file);
        ImageCreator.create(file, CreateOptions.defaults(1 << 20).withClusterSize(512));
        CrashSimStorage sim = new CrashSimStorage(Files.readAllBytes(file));
        GuestHistory history = new GuestHistory(1 << 20);
        long last = (1 << 20) - 4096;
        try (Qcow2Image img = Qcow2Image.open(sim, null, OpenOptions.readWriteDefaults().withPool(false))) {
            for (int round = 0; round < 2; round++) {
                for (long off : new long[] {0, last}) {
                    img.write(off, ByteBuffer.wrap(history.write(off, 4096)));
                }
                if (round == 0) {
                    long before = sim.flushCount();
                    Snapshots.create(img, "s");
                    history.snapshotCreated("s", before, sim.flushCount());
                }
            }
            // Flushed, so that the old disk is exactly the last writes (the history cannot know that the apply's
            // first step makes them durable, and without the flush would allow either value in each sector).
            img.flush();
            history.flushed(sim.flushCount());
            long before = sim.flushCount();
            Snapshots.apply(img, Snapshots.findByName(Snapshots.list(img), "s").orElseThrow(), breakage);
            history.snapshotApplied("s", before, sim.flushCount());
        }
        return sim.crashStates(CrashOptions.defaults()).map(s -> CrashInvariants.check(s, history))
                .filter(c -> !c.ok()).toList();
    }

    @Test
    void theOrderedSnapshotCodeSurvivesEveryCrashState() throws IOException {
        assertEquals(List.of(), failuresOfWorkload(Breakage.NONE));
        assertEquals(List.of(), failuresOfApply(Breakage.NONE));
    }

    @Test
    void anApplyThatSwitchesHalfTheTableFirstIsCaught() throws IOException {
        List<CrashCheck> failed = failuresOfApply(Breakage.HALF_SWITCHED_APPLY);
        assertFalse(failed.isEmpty(), "the torn apply went unnoticed");
        // Each sector alone holds a legal value; only the whole disk shows the mix.
        assertTrue(failed.stream().allMatch(c -> c.message().contains("neither the old one nor the snapshot's")),
                failed.toString());
    }

    @Test
    void refcountsLoweredBeforeTheTableDropsTheSnapshotAreCaught() throws IOException {
        List<CrashCheck> failed = failuresOfWorkload(Breakage.REFCOUNTS_BEFORE_TABLE);
        assertFalse(failed.isEmpty(), "the broken ordering went unnoticed");
        // The signature of the broken rule: the snapshot is still listed, its clusters' refcounts already lower
        // (and where the new snapshot table reused a freed cluster, the snapshot's tables are overwritten).
        assertTrue(failed.stream().anyMatch(c -> c.message().contains("a refcount below its references")),
                failed.toString());
    }

    @Test
    void aHeaderPointingToAnUnsyncedTableIsCaught() throws IOException {
        List<CrashCheck> failed = failuresOfWorkload(Breakage.TABLE_UNSYNCED);
        assertFalse(failed.isEmpty(), "the broken ordering went unnoticed");
        // The header survives, the table it points to does not: the image does not open, or lists garbage.
        assertTrue(failed.stream().allMatch(c -> c.message().contains("invariant a")
                || c.message().contains("invariant f")), failed.toString());
        System.out.println("snapshot table unsynced: " + failed.size() + " failing states, e.g. "
                + failed.get(0).message());
    }
}
