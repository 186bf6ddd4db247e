package io.github.qcowloom.simulation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.simulation.ConcurrentWorkload.Kind;
import io.github.qcowloom.simulation.ConcurrentWorkload.Layout;
import io.github.qcowloom.simulation.ConcurrentWorkload.Op;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The driver under the explorer is deterministic: a seed replays the same requests in the same order. */
class ExplorerReplayTest {
    private static final ConcurrentWorkload WORKLOAD = new ConcurrentWorkload(
            new Layout(12, 1, 16, false, false, true, false, 2, 1, 20),
            List.of(List.of(new Op(Kind.WRITE, 0, 9, 0), new Op(Kind.FLUSH, 0, 0, 0), new Op(Kind.READ, 0, 16, 0)),
                    List.of(new Op(Kind.WRITE, 8, 40, 0), new Op(Kind.DISCARD, 0, 16, 0)),
                    List.of(new Op(Kind.COMPRESSED, 64, 8, 0), new Op(Kind.WRITE, 100, 3, 0),
                            new Op(Kind.READ, 60, 20, 0))));

    private static List<String> traceOf(long seed) {
        List<List<String>> trace = new ArrayList<>();
        Simulation.Result r = Simulation.run(seed, 1_000_000, sim -> trace.add(WORKLOAD.run(sim, 2).trace()));
        assertTrue(r.ok(), () -> "seed " + seed + ": " + r.failure());
        assertEquals(0, r.foreignSubmissions(), "a wake-up came from outside the simulation");
        List<String> out = new ArrayList<>(trace.get(0));
        out.add("hash " + r.scheduleHash() + ", steps " + r.steps());
        return out;
    }

    @Test
    void theSameSeedReplaysTheSameInterleaving() {
        for (long seed = 0; seed < 5; seed++) {
            assertEquals(traceOf(seed), traceOf(seed));
        }
        Set<List<String>> distinct = new HashSet<>();
        for (long seed = 0; seed < 10; seed++) {
            distinct.add(traceOf(seed));
        }
        assertTrue(distinct.size() >= 8, "10 seeds gave " + distinct.size() + " interleavings");
    }
}
