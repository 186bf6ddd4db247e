package io.github.qcowloom.crashkit;

/**
 * How many crash states a {@link CrashSimStorage} produces and how they are damaged.
 *
 * @param mode what happens to unflushed writes
 * @param seed seeds the random subsets and the garbage of the torn modes
 * @param powersetMax an epoch with at most this many operations gets every subset; a larger one gets the
 *     subsets of up to 2 operations plus {@code randomSubsets} random ones
 * @param randomSubsets random subsets per large epoch
 * @param everyEpoch subsets for every epoch, not only the last (open) one
 * @param flushesOrder false pretends flushes order nothing (a broken disk): the whole log is one epoch, so a
 *     write issued after a flush may survive while an earlier one is lost. Only for proving that a check bites.
 */
public record CrashOptions(CrashMode mode, long seed, int powersetMax, int randomSubsets, boolean everyEpoch,
        boolean flushesOrder) {
    public CrashOptions {
        if (powersetMax < 0 || powersetMax > 20 || randomSubsets < 0) {
            throw new IllegalArgumentException("powersetMax in [0, 20] and randomSubsets >= 0 required");
        }
    }

    /** Sector-atomic, seed 0, full powerset up to 10 operations, else 20 random subsets, every epoch. */
    public static CrashOptions defaults() {
        return new CrashOptions(CrashMode.SECTOR_ATOMIC, 0, 10, 20, true, true);
    }

    public CrashOptions withMode(CrashMode v) {
        return new CrashOptions(v, seed, powersetMax, randomSubsets, everyEpoch, flushesOrder);
    }

    public CrashOptions withSeed(long v) {
        return new CrashOptions(mode, v, powersetMax, randomSubsets, everyEpoch, flushesOrder);
    }

    public CrashOptions withPowersetMax(int v) {
        return new CrashOptions(mode, seed, v, randomSubsets, everyEpoch, flushesOrder);
    }

    public CrashOptions withRandomSubsets(int v) {
        return new CrashOptions(mode, seed, powersetMax, v, everyEpoch, flushesOrder);
    }

    public CrashOptions withEveryEpoch(boolean v) {
        return new CrashOptions(mode, seed, powersetMax, randomSubsets, v, flushesOrder);
    }

    public CrashOptions withFlushesOrder(boolean v) {
        return new CrashOptions(mode, seed, powersetMax, randomSubsets, everyEpoch, v);
    }
}
