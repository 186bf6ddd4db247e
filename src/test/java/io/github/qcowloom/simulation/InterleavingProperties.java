package io.github.qcowloom.simulation;

import io.github.qcowloom.simulation.ConcurrentWorkload.Kind;
import io.github.qcowloom.simulation.ConcurrentWorkload.Layout;
import io.github.qcowloom.simulation.ConcurrentWorkload.Op;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Assume;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.ShrinkingMode;
import net.jqwik.api.lifecycle.AfterContainer;
import io.github.qcowloom.testing.Qemu;

/**
 * The interleaving explorer over the whole driver: 2–6 guest threads (up to 16 with -Pdst-long) doing writes,
 * reads, discards, write-zeroes, compressed writes, flushes, snapshot create/apply/delete or shrink/grow, on
 * images of 512 B–64 KiB clusters, with extended L2, lazy refcounts, the pool on or off, a backing file, and caches
 * of one to four L2 slices and one or two refcount slices, so that eviction happens all the time. Each workload runs
 * under several seeded schedules; a failure prints the seed that replays it and the trace, and jqwik shrinks the
 * workload. The count of distinct interleavings explored is printed at the end.
 *
 * <p>{@code -Ddst.interleavings=N -Ddst.schedules=M -Ddst.maxGuests=G} scale it (the dst-long profile sets them).
 */
class InterleavingProperties {
    /** Distinct interleavings to explore: the default suite's 10 000, or -Ddst.interleavings (dst-long: 10^6). */
    private static final long TARGET = Long.getLong("dst.interleavings", 10_000);
    private static final int SCHEDULES = Integer.getInteger("dst.schedules", 10);
    private static final int MAX_GUESTS = Integer.getInteger("dst.maxGuests", 6);
    private static final long MAX_STEPS = 2_000_000;
    /** Every this many runs, qemu-img checks the closed image too. */
    private static final int QEMU_CHECK_EVERY = 97;
    private static final Set<Long> DISTINCT = ConcurrentHashMap.newKeySet();
    private static final AtomicLong RUNS = new AtomicLong();
    private static final long STARTED = System.nanoTime();
    /** Set by the first failure, so that jqwik's shrinking is not cut short by the target. */
    private static volatile boolean failed;

    // Tries beyond the target are discarded before they run, so the interleaving count, not the try count, bounds
    // the run.
    @Property(tries = 1_000_000, maxDiscardRatio = 1_000_000, shrinking = ShrinkingMode.BOUNDED)
    void everyReadSeesAnAtomicDiskAndTheImageStaysConsistent(@ForAll("workloads") ConcurrentWorkload workload,
            @ForAll long seed) throws Exception {
        Assume.that(failed || DISTINCT.size() < TARGET);
        for (int i = 0; i < SCHEDULES; i++) {
            long s = seed + i;
            long crashFlush = 1 + Math.floorMod(s * 0x9E3779B97F4A7C15L, 24);
            ConcurrentWorkload.Outcome[] outcome = new ConcurrentWorkload.Outcome[1];
            Simulation.Result r = Simulation.run(s, MAX_STEPS, sim -> outcome[0] = workload.run(sim, crashFlush));
            long run = RUNS.incrementAndGet();
            DISTINCT.add(r.scheduleHash() * 31 + workload.hashCode());
            if (!r.ok()) {
                failed = true;
                throw new AssertionError("schedule seed " + s + " (crash copy at flush " + crashFlush + ") fails "
                        + "after " + r.steps() + " steps: " + r.failure().getMessage(), r.failure());
            }
            if (run % QEMU_CHECK_EVERY == 0 && Qemu.available()) {
                ConcurrentWorkload.qemuCheck(outcome[0].image());
            }
        }
    }

    @AfterContainer
    static void report() {
        System.out.println("interleavings explored: " + DISTINCT.size() + " distinct of " + RUNS.get() + " runs ("
                + (System.nanoTime() - STARTED) / 1_000_000 + " ms)");
    }

    @Provide
    Arbitrary<ConcurrentWorkload> workloads() {
        Arbitrary<Layout> layouts = Combinators.combine(
                Arbitraries.integers().between(9, 16),
                Arbitraries.integers().between(1, 3),
                Arbitraries.integers().between(2, 8),
                Arbitraries.of(false, false, true),
                Arbitraries.of(false, true),
                Arbitraries.of(false, true),
                Arbitraries.of(false, false, false, true),
                Combinators.combine(Arbitraries.integers().between(1, 4), Arbitraries.integers().between(1, 2))
                        .as((l2, rb) -> new int[] {l2, rb}))
                .as((bits, tables, hot, ext, lazy, pool, backing, caches) -> new Layout(bits, tables, hot,
                        ext && bits >= 14, lazy, pool, backing, caches[0], caches[1], 0));
        return layouts.flatMap(layout -> Arbitraries.of(true, false).flatMap(snapshots -> {
            Arbitrary<Op> op = ops(layout, snapshots);
            return op.list().ofMinSize(1).ofMaxSize(6).list().ofMinSize(2).ofMaxSize(MAX_GUESTS)
                    .map(guests -> new ConcurrentWorkload(layout, guests));
        }));
    }

    private static Arbitrary<Op> ops(Layout layout, boolean snapshots) {
        int clusterSectors = (int) (layout.clusterSize() / 512);
        long sectors = layout.size() / 512;
        int hotClusters = layout.l2Tables() * layout.hot();
        Arbitrary<Long> hotCluster = Arbitraries.integers().between(0, hotClusters - 1).map(layout::hotCluster);
        Arbitrary<Long> sector = Combinators.combine(hotCluster, Arbitraries.integers().between(0, clusterSectors - 1))
                .as((c, s) -> c * clusterSectors + s);
        Arbitrary<Op> ranged = Combinators.combine(
                Arbitraries.of(Kind.WRITE, Kind.WRITE, Kind.WRITE, Kind.READ, Kind.READ, Kind.DISCARD, Kind.ZEROES),
                sector, Arbitraries.integers().between(1, 2 * clusterSectors))
                .as((k, s, n) -> new Op(k, s, (int) Math.min(n, sectors - s), 0));
        Arbitrary<Op> compressed = hotCluster
                .map(c -> new Op(Kind.COMPRESSED, c * clusterSectors, clusterSectors, 0));
        Arbitrary<Op> flush = Arbitraries.just(new Op(Kind.FLUSH, 0, 0, 0));
        Arbitrary<Op> rare;
        if (snapshots) {
            rare = Combinators.combine(Arbitraries.of(Kind.SNAPSHOT, Kind.APPLY, Kind.DELETE),
                    Arbitraries.integers().between(1, 3)).as((k, n) -> new Op(k, 0, 0, n));
        } else {
            rare = Arbitraries.oneOf(
                    Arbitraries.integers().between(1, hotClusters - 1).map(layout::hotCluster)
                            .map(c -> new Op(Kind.SHRINK, c * clusterSectors - (c % 2), 0, 0)),
                    Arbitraries.just(new Op(Kind.GROW, sectors, 0, 0)));
        }
        return Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(12, ranged), net.jqwik.api.Tuple.of(2, compressed),
                net.jqwik.api.Tuple.of(3, flush), net.jqwik.api.Tuple.of(2, rare));
    }
}
