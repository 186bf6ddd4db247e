package io.github.qcowloom.simulation;

import java.util.HashSet;
import java.util.Set;

/**
 * The interleaving explorer's entry point: runs a concurrent workload on a {@link SimScheduler}, so that the
 * threads it starts interleave as a seed says, and replays exactly when run again with that seed.
 *
 * <pre>{@code
 * Simulation.Result r = Simulation.run(seed, 1_000_000, sim -> {
 *     Storage disk = new SimStorage(new MemoryStorage(image), sim);       // yields at every I/O
 *     try (Qcow2Image img = Qcow2Image.open(disk, null, OpenOptions.readWriteDefaults().withTicker(sim))) {
 *         Thread a = sim.start("writer", () -> ...), b = sim.start("reader", () -> ...);
 *         a.join();
 *         b.join();
 *     }
 * });
 * if (!r.ok()) throw new AssertionError("seed " + r.seed() + " fails", r.failure());
 * }</pre>
 *
 * The body runs on a virtual thread of the simulation; whatever it, or a thread it started, throws is the run's
 * failure, and so is a thread it started and left running. Images opened with
 * the scheduler as their {@link io.github.qcowloom.api.Ticker} keep their background work (the cluster pool) on
 * virtual time too. Files the workload opens (a backing file) must use {@code StorageBackend.FILECHANNEL}: an
 * io_uring completion arrives from a thread outside the simulation, at a time no seed decides.
 */
public final class Simulation {
    private Simulation() {
    }

    /** A workload: starts threads with {@link SimScheduler#start}, joins them, and throws on a wrong result. */
    @FunctionalInterface
    public interface Body {
        void run(SimScheduler sim) throws Exception;
    }

    /**
     * How a run ended.
     *
     * @param seed the seed that replays it
     * @param steps scheduling steps taken
     * @param scheduleHash identifies the interleaving: equal schedules, equal hashes
     * @param failure what the body threw, or the {@link SimulationStuckException}; null when it passed
     * @param foreignSubmissions wake-ups from outside the simulation (real time leaking in; 0 when deterministic)
     */
    public record Result(long seed, long steps, long scheduleHash, Throwable failure, long foreignSubmissions) {
        public boolean ok() {
            return failure == null;
        }
    }

    /** Runs {@code body} under the schedule {@code seed} chooses, for at most {@code maxSteps} steps. */
    public static Result run(long seed, long maxSteps, Body body) {
        SimScheduler sim = new SimScheduler(seed);
        Thread root = sim.start("sim-root", () -> body.run(sim));
        Throwable failure = null;
        try {
            sim.runUntil(root, maxSteps);
        } catch (SimulationStuckException e) {
            failure = e;
        }
        if (failure == null && !sim.failures().isEmpty()) {
            failure = sim.failures().get(0);
        }
        String alive = sim.liveThreads();
        if (failure == null && !alive.isEmpty()) {
            // Their later failures would go unseen, and they would stay parked on a scheduler nobody runs.
            failure = new SimulationStuckException("threads still alive after the body returned (started and not"
                    + " joined?)", alive);
        }
        return new Result(seed, sim.steps(), sim.scheduleHash(), failure, sim.foreignSubmissions());
    }

    /**
     * Runs {@code body} under {@code runs} schedules, seeds {@code firstSeed}, {@code firstSeed + 1}, …; stops at the
     * first failure.
     */
    public static Exploration explore(long firstSeed, int runs, long maxSteps, Body body) {
        Set<Long> schedules = new HashSet<>();
        for (int i = 0; i < runs; i++) {
            Result r = run(firstSeed + i, maxSteps, body);
            schedules.add(r.scheduleHash());
            if (!r.ok()) {
                return new Exploration(i + 1, schedules.size(), r);
            }
        }
        return new Exploration(runs, schedules.size(), null);
    }

    /**
     * What {@link #explore} found.
     *
     * @param runs schedules run
     * @param distinct distinct interleavings among them
     * @param failed the first failing run, or null
     */
    public record Exploration(int runs, int distinct, Result failed) {
    }
}
