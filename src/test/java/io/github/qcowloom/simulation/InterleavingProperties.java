package io.github.qcowloom.simulation;

import io.github.qcowloom.simulation.ConcurrentWorkload.Kind;
import io.github.qcowloom.simulation.ConcurrentWorkload.Layout;
import io.github.qcowloom.simulation.ConcurrentWorkload.Op;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Assume;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.EdgeCasesMode;
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
 * of one to four L2 slices and one or two refcount slices, so that eviction happens all the time; in two layouts of
 * three, a tenth or a third of the I/Os and announced events also take a random virtual time, so that a thread can
 * stall anywhere while others run through whole operations. Each workload runs
 * under several seeded schedules; a failure prints the seed that replays it and the trace, and jqwik shrinks the
 * workload. The count of distinct interleavings explored is printed at the end.
 *
 * <p>{@code -Ddst.interleavings=N -Ddst.schedules=M -Ddst.maxGuests=G} scale it (the dst-long profile sets them).
 */
class InterleavingProperties {
    /**
     * Distinct interleavings to explore: the default suite's 60 000 (its share of the suite's 15 minutes), or
     * -Ddst.interleavings (dst-long: 10^6).
     */
    private static final long TARGET = Long.getLong("dst.interleavings", 60_000);
    private static final int SCHEDULES = Integer.getInteger("dst.schedules", 10);
    private static final int MAX_GUESTS = Integer.getInteger("dst.maxGuests", 6);
    private static final long MAX_STEPS = 2_000_000;
    /** Every this many runs, qemu-img checks the closed image too. */
    private static final int QEMU_CHECK_EVERY = 97;
    private static final Set<Long> DISTINCT = ConcurrentHashMap.newKeySet();
    private static final AtomicLong RUNS = new AtomicLong();
    private static final long STARTED = System.nanoTime();
    private static final AtomicLong SIM_NANOS = new AtomicLong();
    private static final AtomicLong STEPS = new AtomicLong();
    /** Set by the first failure, so that jqwik's shrinking is not cut short by the target. */
    private static volatile boolean failed;

    // The tries come from jqwik.tries.default (junit-platform.properties: enough for the default target; -Pdst-long
    // raises it), a little more than the target needs; tries beyond the target are discarded before they run, so
    // the interleaving count bounds the run. No edge cases: they multiply generation time, not coverage.
    @Property(maxDiscardRatio = 1_000_000, shrinking = ShrinkingMode.BOUNDED, edgeCases = EdgeCasesMode.NONE)
    void everyReadSeesAnAtomicDiskAndTheImageStaysConsistent(@ForAll("workloads") ConcurrentWorkload workload,
            @ForAll long seed) throws Exception {
        Assume.that(failed || DISTINCT.size() < TARGET);
        long key = workload.toString().hashCode(); // stable across JVMs, unlike an enum's identity hash
        for (int i = 0; i < SCHEDULES; i++) {
            long s = seed + i;
            long crashFlush = 1 + Math.floorMod(s * 0x9E3779B97F4A7C15L, 24);
            ConcurrentWorkload.Outcome[] outcome = new ConcurrentWorkload.Outcome[1];
            long t0 = System.nanoTime();
            Simulation.Result r = Simulation.run(s, MAX_STEPS, sim -> outcome[0] = workload.run(sim, crashFlush));
            SIM_NANOS.addAndGet(System.nanoTime() - t0);
            STEPS.addAndGet(r.steps());
            long run = RUNS.incrementAndGet();
            DISTINCT.add(r.scheduleHash() * 31 + key);
            if (!r.ok()) {
                if (!failed) {
                    System.out.println("first failure after " + DISTINCT.size() + " distinct interleavings");
                }
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
                + (System.nanoTime() - STARTED) / 1_000_000 + " ms, " + SIM_NANOS.get() / 1_000_000 + " ms in runs, "
                + STEPS.get() + " steps)");
    }

    @Provide
    Arbitrary<ConcurrentWorkload> workloads() {
        Arbitrary<Layout> layouts = Combinators.combine(
                Arbitraries.integers().between(9, 16),
                Arbitraries.integers().between(1, 3),
                Arbitraries.integers().between(2, 8),
                Arbitraries.of(false, false, true),
                Arbitraries.of(false, true, true),
                Arbitraries.of(false, true, true),
                Arbitraries.of(false, false, false, true),
                Combinators.combine(Arbitraries.integers().between(1, 4), Arbitraries.integers().between(1, 2),
                        Arbitraries.of(0, 10, 30)).as((l2, rb, delay) -> new int[] {l2, rb, delay}))
                .as((bits, tables, hot, ext, lazy, pool, backing, more) -> new Layout(bits, tables, hot,
                        ext && bits >= 14, lazy, pool, backing, more[0], more[1], more[2]));
        // Requests are drawn as plain numbers and mapped onto the layout afterwards (no flatMap: jqwik's flatMap
        // costs more than the runs themselves), so they shrink as numbers do.
        Arbitrary<int[]> raw = Arbitraries.integers().between(0, 999_999).array(int[].class).ofSize(4);
        Arbitrary<List<List<int[]>>> guests = raw.list().ofMinSize(1).ofMaxSize(6).list().ofMinSize(2)
                .ofMaxSize(MAX_GUESTS);
        return Combinators.combine(layouts, Arbitraries.of(true, false), guests)
                .as((layout, snapshots, g) -> new ConcurrentWorkload(layout,
                        g.stream().map(ops -> ops.stream().map(r -> op(layout, snapshots, r)).toList()).toList()));
    }

    /**
     * One request from four numbers: {@code r[0]} picks the kind (writes 5 in 20, reads 3, a discard, a zero write,
     * a fast zero write and a copy-on-read prefetch 1 each, compressed writes 2, flushes 3, snapshot operations or
     * resizes 3: one shrink, often refused over data, to two grows, each a table edit that ends in a clean),
     * {@code r[1]} the hot cluster, {@code r[2]} the sector in it and {@code r[3]} the length (up to two clusters; one write in five of two or three
     * whole clusters from the hot cluster's start).
     */
    private static Op op(Layout layout, boolean snapshots, int[] r) {
        int clusterSectors = (int) (layout.clusterSize() / 512);
        long sectors = layout.size() / 512;
        int hotClusters = layout.l2Tables() * layout.hot();
        long cluster = layout.hotCluster(r[1] % hotClusters);
        int roll = r[0] % 20;
        if (roll < 12) {
            Kind k = new Kind[] {Kind.WRITE, Kind.WRITE, Kind.WRITE, Kind.WRITE, Kind.WRITE, Kind.READ, Kind.READ,
                    Kind.READ, Kind.DISCARD, Kind.ZEROES, Kind.FAST_ZEROES, Kind.CACHE}[roll];
            if (k == Kind.WRITE && r[2] % 5 == 0) {
                // Two or three whole clusters: a run of new clusters allocated and written at once.
                long sector = cluster * clusterSectors;
                return new Op(k, sector, (int) Math.min((2 + r[3] % 2) * clusterSectors, sectors - sector), 0);
            }
            long sector = cluster * clusterSectors + r[2] % clusterSectors;
            return new Op(k, sector, (int) Math.min(1 + r[3] % (2 * clusterSectors), sectors - sector), 0);
        }
        if (roll < 14) {
            return new Op(Kind.COMPRESSED, cluster * clusterSectors, clusterSectors, 0);
        }
        if (roll < 17) {
            return new Op(Kind.FLUSH, 0, 0, 0);
        }
        if (snapshots) {
            // Two names, so that applies and deletes mostly find the snapshot a create made.
            return new Op(new Kind[] {Kind.SNAPSHOT, Kind.APPLY, Kind.DELETE}[r[2] % 3], 0, 0, 1 + r[3] % 2);
        }
        if (roll == 17 && hotClusters > 1) {
            long to = layout.hotCluster(1 + r[1] % (hotClusters - 1));
            return new Op(Kind.SHRINK, to * clusterSectors - (to % 2), 0, 0);
        }
        return new Op(Kind.GROW, sectors, 0, 0);
    }
}
