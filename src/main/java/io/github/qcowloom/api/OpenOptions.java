package io.github.qcowloom.api;

/**
 * How to open an image.
 *
 * @param readOnly open the file read-only; a corrupt image can only be opened so
 * @param direct use O_DIRECT for the image file (and its data file)
 * @param followReferences open the backing file and external data file the image names; when false, reads
 *     that need them fail, which is what metadata-only inspection (info) wants (CVE-2024-4467)
 * @param tuning cache sizes and the cluster pool
 * @param ticker the time the image's background work (the cluster pool) runs by: real time, or the interleaving
 *     explorer's virtual clock
 */
public record OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning,
        Ticker ticker) {
    public static final long DEFAULT_MAX_L2_CACHE = 32L << 20;

    public OpenOptions {
        java.util.Objects.requireNonNull(tuning, "tuning");
        java.util.Objects.requireNonNull(ticker, "ticker");
    }

    /** Options that run by real time. */
    public OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning) {
        this(readOnly, direct, followReferences, tuning, Ticker.SYSTEM);
    }

    /** Read-only, buffered, following references, default tuning. */
    public static OpenOptions readOnlyDefaults() {
        return new OpenOptions(true, false, true, ImageOptions.defaults());
    }

    /** Read-write, buffered, following references, default tuning. */
    public static OpenOptions readWriteDefaults() {
        return new OpenOptions(false, false, true, ImageOptions.defaults());
    }

    public OpenOptions withReadOnly(boolean v) {
        return new OpenOptions(v, direct, followReferences, tuning, ticker);
    }

    public OpenOptions withDirect(boolean v) {
        return new OpenOptions(readOnly, v, followReferences, tuning, ticker);
    }

    public OpenOptions withFollowReferences(boolean v) {
        return new OpenOptions(readOnly, direct, v, tuning, ticker);
    }

    public OpenOptions withTuning(ImageOptions v) {
        return new OpenOptions(readOnly, direct, followReferences, v, ticker);
    }

    public OpenOptions withTicker(Ticker v) {
        return new OpenOptions(readOnly, direct, followReferences, tuning, v);
    }

    public OpenOptions withL2CacheBytes(long v) {
        return withTuning(tuning.withL2CacheBytes(v));
    }

    public OpenOptions withPool(boolean v) {
        return withTuning(tuning.withPool(v));
    }
}
