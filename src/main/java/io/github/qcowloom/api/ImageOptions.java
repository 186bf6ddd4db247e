package io.github.qcowloom.api;

/**
 * Run-time tuning of an open image, loadable from a profile in {@code props/}.
 *
 * @param l2CacheBytes bytes of L2 tables kept in memory; 0 = QEMU's default (the whole disk, at most 32 MiB)
 * @param refblockCacheBytes bytes of refcount blocks kept in memory
 * @param pool keep a pool of preallocated clusters, refilled by an allocator virtual thread
 * @param poolLow refill the pool (to the midpoint) when it holds fewer clusters than this
 * @param poolHigh return clusters (down to the midpoint) when the pool holds more than this
 * @param poolMax the most the thresholds may grow to when requests find the pool empty
 * @param execution how requests run when driven asynchronously: {@code virtual} or {@code pool:N}
 */
public record ImageOptions(long l2CacheBytes, long refblockCacheBytes, boolean pool, int poolLow, int poolHigh,
        int poolMax, String execution) {

    public ImageOptions {
        if (l2CacheBytes < 0 || refblockCacheBytes < 0) {
            throw new IllegalArgumentException("cache sizes must be >= 0");
        }
        if (poolLow < 1 || poolHigh < poolLow || poolMax < poolHigh) {
            throw new IllegalArgumentException("pool thresholds need 1 <= low <= high <= max: " + poolLow + ", "
                    + poolHigh + ", " + poolMax);
        }
        if (!execution.equals("virtual") && !execution.matches("pool:[1-9][0-9]{0,3}")) {
            throw new IllegalArgumentException("execution must be 'virtual' or 'pool:N', not '" + execution + "'");
        }
    }

    /** QEMU's cache defaults, a 256 KiB refcount cache, and the pool on with 16/64 clusters (cap 1024). */
    public static ImageOptions defaults() {
        return new ImageOptions(0, 256 << 10, true, 16, 64, 1024, "virtual");
    }

    public ImageOptions withL2CacheBytes(long v) {
        return new ImageOptions(v, refblockCacheBytes, pool, poolLow, poolHigh, poolMax, execution);
    }

    public ImageOptions withRefblockCacheBytes(long v) {
        return new ImageOptions(l2CacheBytes, v, pool, poolLow, poolHigh, poolMax, execution);
    }

    public ImageOptions withPool(boolean v) {
        return new ImageOptions(l2CacheBytes, refblockCacheBytes, v, poolLow, poolHigh, poolMax, execution);
    }

    public ImageOptions withExecution(String v) {
        return new ImageOptions(l2CacheBytes, refblockCacheBytes, pool, poolLow, poolHigh, poolMax, v);
    }

    public ImageOptions withPoolThresholds(int low, int high, int max) {
        return new ImageOptions(l2CacheBytes, refblockCacheBytes, pool, low, high, max, execution);
    }
}
