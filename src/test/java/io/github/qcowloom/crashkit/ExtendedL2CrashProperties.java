package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import java.io.IOException;
import java.util.Iterator;
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
 * {@link CrashProperties}' chains of writes, discards, write-zeroes and flushes on extended-L2 images: sector-sized
 * requests fill, copy and zero single subclusters, so the crash states cover in-place bitmap updates and
 * subcluster copy-on-write; every one must pass {@link CrashInvariants}. Runs until
 * {@code -Dcrashkit.extl2.states} (default 500) distinct states were checked.
 */
class ExtendedL2CrashProperties {
    private static final long TARGET = Long.getLong("crashkit.extl2.states", 500);
    private static final AtomicLong EXPLORED = new AtomicLong();

    @AfterContainer
    static void report() {
        System.out.println("extended-L2 crash states explored: " + EXPLORED.get());
    }

    @Property(tries = 100_000, maxDiscardRatio = 100_000, shrinking = net.jqwik.api.ShrinkingMode.BOUNDED)
    void everyCrashStateIsConsistent(@ForAll("chains") ActionChain<CrashDisk> chain,
            @ForAll("modes") CrashMode mode, @ForAll long seed) throws IOException {
        Assume.that(EXPLORED.get() < TARGET);
        CrashDisk disk = chain.run();
        disk.img.close();
        Iterator<CrashState> states = disk.sim.crashStates(CrashOptions.defaults().withMode(mode).withSeed(seed))
                .iterator();
        while (states.hasNext()) {
            CrashCheck check = CrashInvariants.check(states.next(), disk.history);
            EXPLORED.incrementAndGet();
            assertTrue(check.ok(), () -> disk + ": " + check.message());
        }
    }

    @Provide
    Arbitrary<CrashMode> modes() {
        return Arbitraries.of(CrashMode.SECTOR_ATOMIC, CrashMode.SECTOR_ATOMIC, CrashMode.PROCESS_KILL);
    }

    @Provide
    Arbitrary<ActionChain<CrashDisk>> chains() {
        // 16 KiB clusters have 512-byte subclusters (every request fills whole ones); 64 KiB ones 2 KiB subclusters.
        Arbitrary<CreateOptions> layouts = Combinators.combine(Arbitraries.of(16384, 65536),
                Arbitraries.integers().between(1, 2), Arbitraries.of(true, false))
                .as((cs, mib, lazy) -> CreateOptions.defaults(mib * (1L << 20)).withClusterSize(cs)
                        .withExtendedL2(true).withLazyRefcounts(lazy));
        return Combinators.combine(layouts, Arbitraries.of(true, false)).flatAs((layout, pool) ->
                ActionChain.startWith(() -> CrashProperties.io(() -> new CrashDisk(layout, pool)))
                        .withAction(5, new CrashProperties.WriteAction())
                        .withAction(2, new CrashProperties.DiscardAction())
                        .withAction(3, new CrashProperties.ZeroAction())
                        .withAction(3, Action.just(Transformer.mutate("flush", d -> CrashProperties.io(() -> {
                            d.flush();
                            return d;
                        }))))
                        .withMaxTransformations(12));
    }
}
