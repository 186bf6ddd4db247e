package io.github.qcowloom.api;

/**
 * Run-time tuning of an open image, loadable from a profile in {@code props/}.
 *
 * @param l2CacheBytes bytes of L2 tables kept in memory; 0 = QEMU's default (the whole disk, at most 32 MiB)
 * @param refblockCacheBytes bytes of refcount blocks kept in memory
 * @param pool keep a pool of preallocated clusters, refilled by an allocator virtual thread
 * @param poolLow refill the pool (to the midpoint) when it holds fewer clusters than this; keep it below poolHigh:
 *     a refill brings at least half the gap between them, so with the two equal each refill is one cluster
 * @param poolHigh return clusters (down to the midpoint) when the pool holds more than this
 * @param poolMax the most poolHigh may grow to when requests find the pool empty (poolLow grows with it, at their
 *     ratio)
 * @param execution how requests run when driven asynchronously: {@code virtual}, {@code loop:N}, {@code pool:N} or
 *     {@code auto} ({@code loop:1} with O_DIRECT through io_uring, else {@code virtual})
 * @param recountMemoryBytes the most the reference recount of a dirty image's repair may allocate; a recount that
 *     would need more is refused (ImageTooLargeException) instead of running the JVM out of memory; 0 = a quarter
 *     of the maximum heap ({@link #recountMemoryLimit()})
 * @param storage how image files are read and written: FileChannel, or io_uring where the runtime and kernel
 *     allow it (falling back to FileChannel, said once in the log, where they do not)
 */
public record ImageOptions(long l2CacheBytes, long refblockCacheBytes, boolean pool, int poolLow, int poolHigh,
        int poolMax, String execution, long recountMemoryBytes, StorageBackend storage) {

    public ImageOptions {
        java.util.Objects.requireNonNull(storage, "storage");
        if (l2CacheBytes < 0 || refblockCacheBytes < 0) {
            throw new IllegalArgumentException("cache sizes must be >= 0");
        }
        if (recountMemoryBytes < 0) {
            throw new IllegalArgumentException("recountMemoryBytes must be >= 0 (0 = automatic)");
        }
        if (poolLow < 1 || poolHigh < poolLow || poolMax < poolHigh) {
            throw new IllegalArgumentException("pool thresholds need 1 <= low <= high <= max: " + poolLow + ", "
                    + poolHigh + ", " + poolMax);
        }
        if (!execution.equals("virtual") && !execution.equals("auto") && !execution.matches("pool:[1-9][0-9]{0,3}")
                && !execution.matches("loop:([1-9]|[1-5][0-9]|6[0-4])")) {
            throw new IllegalArgumentException("execution must be 'auto', 'virtual', 'loop:N' or 'pool:N', not '" + execution
                    + "'");
        }
    }

    /** The options without a recount bound of their own (automatic). */
    public ImageOptions(long l2CacheBytes, long refblockCacheBytes, boolean pool, int poolLow, int poolHigh,
            int poolMax, String execution) {
        this(l2CacheBytes, refblockCacheBytes, pool, poolLow, poolHigh, poolMax, execution, 0,
                StorageBackend.DEFAULT);
    }

    /**
     * QEMU's cache defaults, a 256 KiB refcount cache, the pool on with 16/64 clusters (cap 1024), the automatic
     * execution model and recount bound, the default storage backend.
     */
    public static ImageOptions defaults() {
        return new ImageOptions(0, 256 << 10, true, 16, 64, 1024, "auto", 0, StorageBackend.DEFAULT);
    }

    /**
     * The recount's memory bound in bytes: {@code recountMemoryBytes}, or when 0 a quarter of the maximum heap
     * (the recount needs 2 bytes per referenced cluster, about what QEMU's needs per cluster of the file).
     */
    public long recountMemoryLimit() {
        return recountMemoryBytes > 0 ? recountMemoryBytes : Runtime.getRuntime().maxMemory() / 4;
    }

    public ImageOptions withL2CacheBytes(long v) {
        return new ImageOptions(v, refblockCacheBytes, pool, poolLow, poolHigh, poolMax, execution,
                recountMemoryBytes, storage);
    }

    public ImageOptions withRefblockCacheBytes(long v) {
        return new ImageOptions(l2CacheBytes, v, pool, poolLow, poolHigh, poolMax, execution, recountMemoryBytes,
                storage);
    }

    public ImageOptions withPool(boolean v) {
        return new ImageOptions(l2CacheBytes, refblockCacheBytes, v, poolLow, poolHigh, poolMax, execution,
                recountMemoryBytes, storage);
    }

    public ImageOptions withExecution(String v) {
        return new ImageOptions(l2CacheBytes, refblockCacheBytes, pool, poolLow, poolHigh, poolMax, v,
                recountMemoryBytes, storage);
    }

    public ImageOptions withPoolThresholds(int low, int high, int max) {
        return new ImageOptions(l2CacheBytes, refblockCacheBytes, pool, low, high, max, execution,
                recountMemoryBytes, storage);
    }

    public ImageOptions withRecountMemoryBytes(long v) {
        return new ImageOptions(l2CacheBytes, refblockCacheBytes, pool, poolLow, poolHigh, poolMax, execution, v,
                storage);
    }

    public ImageOptions withStorage(StorageBackend v) {
        return new ImageOptions(l2CacheBytes, refblockCacheBytes, pool, poolLow, poolHigh, poolMax, execution,
                recountMemoryBytes, v);
    }
}
