package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import java.io.IOException;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Invariant f on fixed workloads: a crash at any point of snapshot creates, applies and deletes, between writes that
 * copy on write, discards and flushes, leaves every listed snapshot exactly as it was created, every durably
 * created one listed, every durably deleted one gone, an apply whole or not at all, and nothing the open-time
 * repair leaves for check to find.
 */
class SnapshotCrashTest {
    @ParameterizedTest(name = "cluster {0}, lazy {1}, pool {2}")
    @CsvSource({"4096, false, false", "4096, true, false", "4096, false, true", "65536, false, false",
            "65536, true, true"})
    void everyCrashStateOfSnapshotOperationsPasses(int clusterSize, boolean lazy, boolean pool) throws IOException {
        CrashDisk d = new CrashDisk(CreateOptions.defaults(1 << 20).withClusterSize(clusterSize)
                .withLazyRefcounts(lazy), pool);
        d.write(0, 8192);
        d.write(3L * clusterSize, 4096);
        d.flush();
        d.write(4096, 4096); // unflushed when the snapshot is taken: creation must make it durable
        String first = d.createSnapshot();
        d.write(0, 4096); // copy on write out of the shared cluster
        d.discard(3L * clusterSize, clusterSize);
        String second = d.createSnapshot();
        d.write(8L * clusterSize, 4096);
        d.applySnapshot(first);
        d.write(2048, 1024);
        d.deleteSnapshot(second);
        d.write(6L * clusterSize, 512);
        d.deleteSnapshot(first);
        d.write(512, 512);
        d.img.close();
        long states = 0;
        for (CrashState s : (Iterable<CrashState>) d.sim.crashStates(CrashOptions.defaults())::iterator) {
            CrashCheck check = CrashInvariants.check(s, d.history);
            assertTrue(check.ok(), d + ": " + check.message());
            states++;
        }
        System.out.println(d + ": " + states + " crash states");
        assertTrue(states > 50, "too few crash states to say much: " + states);
        assertEquals(List.of(), d.snapshots);
    }
}
