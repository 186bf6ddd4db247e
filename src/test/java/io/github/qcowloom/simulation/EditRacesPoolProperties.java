package io.github.qcowloom.simulation;

import io.github.qcowloom.simulation.ConcurrentWorkload.Kind;
import io.github.qcowloom.simulation.ConcurrentWorkload.Layout;
import io.github.qcowloom.simulation.ConcurrentWorkload.Op;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.EdgeCasesMode;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.ShrinkingMode;
import net.jqwik.api.lifecycle.AfterContainer;

/**
 * The explorer aimed at one seam: a table edit (a grow, or a snapshot's create and delete) racing the cluster pool's
 * refill, with lazy refcounts, while one guest writes and flushes. Whether the dirty bit covers every refcount a
 * flush leaves behind depends on where the edit's clean falls between the refill's dirty mark and its allocation;
 * with several writers allocating directly the window closes at once, so the broad exploration
 * ({@link InterleavingProperties}) reaches it only now and then. Here two guests reach it in hundreds of runs.
 */
class EditRacesPoolProperties {
    private static final int SCHEDULES = 10;
    private static final Set<Long> DISTINCT = ConcurrentHashMap.newKeySet();

    @Property(tries = 400, shrinking = ShrinkingMode.BOUNDED, edgeCases = EdgeCasesMode.NONE)
    void aTableEditNeverLeavesAPooledRefcountBehindACleanHeader(@ForAll("workloads") ConcurrentWorkload workload,
            @ForAll long seed) {
        for (int i = 0; i < SCHEDULES; i++) {
            long s = seed + i;
            Simulation.Result r = Simulation.run(s, 1_000_000, sim -> workload.run(sim, 0));
            DISTINCT.add(r.scheduleHash() * 31 + workload.toString().hashCode());
            if (!r.ok()) {
                throw new AssertionError("schedule seed " + s + " fails after " + DISTINCT.size()
                        + " distinct interleavings: " + r.failure().getMessage(), r.failure());
            }
        }
    }

    @AfterContainer
    static void report() {
        System.out.println("edit-against-refill interleavings explored: " + DISTINCT.size());
    }

    @Provide
    Arbitrary<ConcurrentWorkload> workloads() {
        Arbitrary<Layout> layouts = Combinators.combine(Arbitraries.integers().between(9, 13),
                Arbitraries.integers().between(2, 6), Arbitraries.of(false, true), Arbitraries.of(0, 10, 30))
                .as((bits, hot, backing, delay) -> new Layout(bits, 1, hot, false, true, true, backing, 1, 1, delay));
        Arbitrary<List<Integer>> writer = Arbitraries.integers().between(0, 999).list().ofMinSize(2).ofMaxSize(7);
        Arbitrary<Boolean> grow = Arbitraries.of(true, false);
        return Combinators.combine(layouts, writer, grow).as((layout, w, byGrow) -> {
            int clusterSectors = (int) (layout.clusterSize() / 512);
            // Writes of one cluster each into the hot clusters, a flush after every third.
            List<Op> writes = w.stream().map(n -> n % 3 == 2 ? new Op(Kind.FLUSH, 0, 0, 0)
                    : new Op(Kind.WRITE, (long) (n % layout.hot()) * clusterSectors, clusterSectors, 0)).toList();
            List<Op> edits = byGrow ? List.of(new Op(Kind.GROW, layout.size() / 512, 0, 0))
                    : List.of(new Op(Kind.SNAPSHOT, 0, 0, 1), new Op(Kind.DELETE, 0, 0, 1));
            return new ConcurrentWorkload(layout, List.of(writes, edits));
        });
    }
}
