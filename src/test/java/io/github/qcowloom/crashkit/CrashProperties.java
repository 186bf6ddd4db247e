package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Assume;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.state.Action;
import net.jqwik.api.state.ActionChain;
import net.jqwik.api.state.Transformer;

/**
 * Random chains of writes, discards, write-zeroes, resizes, flushes and snapshot creates, applies and deletes on an
 * image over a {@link CrashSimStorage}, with the cluster pool and lazy refcounts on and off; every crash state of
 * every chain, sector-atomic, with torn appends or after a process kill, must pass {@link CrashInvariants}. Runs
 * until {@code -Dcrashkit.states} (default 10 000) distinct states were checked.
 */
class CrashProperties {
    private static final long TARGET = Long.getLong("crashkit.states", 10_000);
    private static final AtomicLong EXPLORED = new AtomicLong();
    private static final Map<CrashMode, AtomicLong> BY_MODE = new EnumMap<>(CrashMode.class);

    static {
        for (CrashMode m : CrashMode.values()) {
            BY_MODE.put(m, new AtomicLong());
        }
    }
    private static final AtomicLong CHAINS = new AtomicLong();
    private static final long STARTED = System.nanoTime();

    @AfterContainer
    static void report() {
        System.out.println("crash states explored: " + EXPLORED.get() + " (" + CHAINS.get() + " chains, "
                + (System.nanoTime() - STARTED) / 1_000_000 + " ms; by mode " + BY_MODE + ")");
    }

    // Tries beyond the target are discarded before they run (chains are generated lazily), so the state count,
    // not the try count, bounds the run.
    @Property(tries = 1_000_000, maxDiscardRatio = 1_000_000, shrinking = net.jqwik.api.ShrinkingMode.BOUNDED)
    void everyCrashStateIsConsistent(@ForAll("chains") ActionChain<CrashDisk> chain,
            @ForAll("modes") CrashMode mode, @ForAll long seed) throws IOException {
        Assume.that(EXPLORED.get() < TARGET);
        CrashDisk disk = chain.run();
        disk.img.close();
        CHAINS.incrementAndGet();
        Iterator<CrashState> states = disk.sim.crashStates(CrashOptions.defaults().withMode(mode).withSeed(seed))
                .iterator();
        while (states.hasNext()) {
            CrashCheck check = CrashInvariants.check(states.next(), disk.history);
            EXPLORED.incrementAndGet();
            BY_MODE.get(mode).incrementAndGet();
            assertTrue(check.ok(), () -> disk + ": " + check.message());
        }
    }

    @Provide
    Arbitrary<CrashMode> modes() {
        // TORN tears in-place metadata rewrites too, which no qcow2 driver survives; TORN_APPENDS tears only
        // appended space, which a driver must never expose before it is durable.
        return Arbitraries.of(CrashMode.SECTOR_ATOMIC, CrashMode.SECTOR_ATOMIC, CrashMode.TORN_APPENDS,
                CrashMode.PROCESS_KILL);
    }

    @Provide
    Arbitrary<ActionChain<CrashDisk>> chains() {
        Arbitrary<CreateOptions> layouts = Combinators.combine(Arbitraries.of(4096, 65536),
                Arbitraries.integers().between(1, 4), Arbitraries.of(true, false))
                .as((cs, mib, lazy) -> CreateOptions.defaults(mib * (1L << 20)).withClusterSize(cs)
                        .withLazyRefcounts(lazy));
        return Combinators.combine(layouts, Arbitraries.of(true, false)).flatAs((layout, pool) ->
                ActionChain.startWith(() -> io(() -> new CrashDisk(layout, pool)))
                        .withAction(5, new WriteAction())
                        .withAction(2, new DiscardAction())
                        .withAction(2, new ZeroAction())
                        .withAction(1, Action.just(Transformer.mutate("grow by 3 clusters", d -> io(() -> {
                            d.grow(3L * d.clusterSize);
                            return d;
                        }))))
                        .withAction(3, Action.just(Transformer.mutate("flush", d -> io(() -> {
                            d.flush();
                            return d;
                        }))))
                        .withAction(1, Action.just(Transformer.mutate("create snapshot", d -> io(() -> {
                            d.createSnapshot();
                            return d;
                        }))))
                        .withAction(1, new SnapshotAction("apply", CrashDisk::applySnapshot))
                        .withAction(1, new SnapshotAction("delete", CrashDisk::deleteSnapshot))
                        .withMaxTransformations(12));
    }

    interface IoSupplier<T> {
        T get() throws IOException;
    }

    static <T> T io(IoSupplier<T> s) {
        try {
            return s.get();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A sector-aligned range of up to two clusters, starting on a cluster edge half of the time. */
    static Arbitrary<long[]> range(CrashDisk d) {
        long sectors = d.size / GuestHistory.SECTOR;
        int perCluster = d.clusterSize / GuestHistory.SECTOR;
        Arbitrary<Long> starts = Arbitraries.oneOf(
                Arbitraries.longs().between(0, sectors / perCluster - 1).map(c -> c * perCluster),
                Arbitraries.longs().between(0, sectors - 1));
        return Combinators.combine(starts, Arbitraries.integers().between(1, 2 * perCluster)).as((s, n) ->
                new long[] {s * GuestHistory.SECTOR, Math.min(n, sectors - s) * GuestHistory.SECTOR});
    }

    static final class WriteAction implements Action.Dependent<CrashDisk> {
        @Override
        public Arbitrary<Transformer<CrashDisk>> transformer(CrashDisk d) {
            return range(d).map(r -> Transformer.mutate("write " + r[0] + "+" + r[1], disk -> io(() -> {
                disk.write(r[0], (int) r[1]);
                return disk;
            })));
        }
    }

    static final class DiscardAction implements Action.Dependent<CrashDisk> {
        @Override
        public Arbitrary<Transformer<CrashDisk>> transformer(CrashDisk d) {
            return range(d).map(r -> Transformer.mutate("discard " + r[0] + "+" + r[1], disk -> io(() -> {
                disk.discard(r[0], r[1]);
                return disk;
            })));
        }
    }

    static final class ZeroAction implements Action.Dependent<CrashDisk> {
        @Override
        public Arbitrary<Transformer<CrashDisk>> transformer(CrashDisk d) {
            return Combinators.combine(range(d), Arbitraries.of(true, false)).as((r, unmap) ->
                    Transformer.mutate("zero " + r[0] + "+" + r[1] + (unmap ? " unmap" : ""), disk -> io(() -> {
                        disk.writeZeroes(r[0], r[1], unmap);
                        return disk;
                    })));
        }
    }

    /** Applies or deletes one of the snapshots that exist. */
    static final class SnapshotAction implements Action.Dependent<CrashDisk> {
        interface Step {
            void run(CrashDisk disk, String snapshot) throws IOException;
        }

        private final String verb;
        private final Step step;

        SnapshotAction(String verb, Step step) {
            this.verb = verb;
            this.step = step;
        }

        @Override
        public boolean precondition(CrashDisk d) {
            return !d.snapshots.isEmpty();
        }

        @Override
        public Arbitrary<Transformer<CrashDisk>> transformer(CrashDisk d) {
            return Arbitraries.of(List.copyOf(d.snapshots)).map(name -> Transformer.mutate(verb + " snapshot " + name,
                    disk -> io(() -> {
                        step.run(disk, name);
                        return disk;
                    })));
        }
    }
}
