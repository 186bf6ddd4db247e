package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import java.io.IOException;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Proof that the kit bites: the same workload passes on a disk whose flushes order writes, and fails when the
 * simulated disk lets writes cross a flush (an L2 entry reaching disk before its refcount or its data).
 */
class CrashKitBitesTest {
    private static CrashDisk workload() throws IOException {
        CrashDisk d = new CrashDisk(CreateOptions.defaults(1 << 20).withClusterSize(4096), false);
        d.write(0, 4096);
        d.flush();
        d.write(8192, 4096);
        d.write(65536, 8192);
        d.flush();
        d.discard(0, 4096);
        d.write(16384, 4096);
        d.img.close();
        return d;
    }

    private static List<CrashCheck> failures(CrashDisk d, CrashOptions options) {
        return d.sim.crashStates(options).map(s -> CrashInvariants.check(s, d.history)).filter(c -> !c.ok())
                .toList();
    }

    @Test
    void orderedFlushesPass() throws IOException {
        CrashDisk d = workload();
        List<CrashCheck> failed = failures(d, CrashOptions.defaults());
        assertEquals(List.of(), failed);
    }

    @Test
    void flushesThatOrderNothingAreCaught() throws IOException {
        CrashDisk d = workload();
        List<CrashCheck> failed = failures(d, CrashOptions.defaults().withFlushesOrder(false));
        assertTrue(!failed.isEmpty(), "reordering across flushes went unnoticed");
        assertTrue(failed.stream().anyMatch(c -> c.message().contains("invariant b")
                || c.message().contains("invariant d") || c.message().contains("invariant a")), failed.toString());
        System.out.println("reordered across flushes: " + failed.size() + " failing states, e.g. "
                + failed.get(0).message());
    }
}
