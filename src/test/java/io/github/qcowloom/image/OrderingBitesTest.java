package io.github.qcowloom.image;

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
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Proof that the crash kit bites on the driver itself: with the flush's package-private breakage that writes L2
 * entries before their refcounts, some crash state leaves a referenced cluster at refcount 0 and the invariants fail;
 * without it, the same workload survives every crash state.
 */
class OrderingBitesTest {
    @TempDir
    Path dir;

    /** The failing crash states of the workload; {@code broken}: flushes write L2 entries before refcounts. */
    private List<CrashCheck> failuresOfWorkload(boolean broken) throws Exception {
        Path file = dir.resolve("o.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(1 << 20).withClusterSize(4096));
        CrashSimStorage sim = new CrashSimStorage(Files.readAllBytes(file));
        GuestHistory history = new GuestHistory(1 << 20);
        // No pool and no lazy refcounts: the image stays clean, so nothing repairs a missing refcount on open.
        try (Qcow2Image img = Qcow2Image.open(sim, null, OpenOptions.readWriteDefaults().withPool(false))) {
            if (broken) {
                img.metadataWriter().flushOrder().breakOrderingL2BeforeRefcounts();
            }
            img.write(0, ByteBuffer.wrap(history.write(0, 4096)));
            img.flush();
            history.flushed(sim.flushCount());
            for (long off : new long[] {8192, 65536, 131072}) {
                img.write(off, ByteBuffer.wrap(history.write(off, 4096)));
            }
            img.flush();
            history.flushed(sim.flushCount());
        }
        return sim.crashStates(CrashOptions.defaults()).map(s -> CrashInvariants.check(s, history))
                .filter(c -> !c.ok()).toList();
    }

    @Test
    void orderedFlushesSurviveEveryCrashState() throws Exception {
        assertEquals(List.of(), failuresOfWorkload(false));
    }

    @Test
    void l2EntriesBeforeTheirRefcountsAreCaught() throws Exception {
        List<CrashCheck> failed = failuresOfWorkload(true);
        assertFalse(failed.isEmpty(), "the broken ordering went unnoticed");
        // The signature of the broken rule: a durable L2 entry whose cluster's refcount is still 0 on disk.
        assertTrue(failed.stream().anyMatch(c -> c.message().contains("refcount=0")), failed.toString());
    }
}
