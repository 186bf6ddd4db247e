package io.github.qcowloom.api;

/**
 * How to open an image.
 *
 * @param readOnly open the file read-only; a corrupt image can only be opened so
 * @param direct use O_DIRECT for the image file (and its data file)
 * @param followReferences open the backing file and external data file the image names; when false, reads
 *     that need them fail, which is what metadata-only inspection (info) wants (CVE-2024-4467)
 * @param tuning cache sizes and the cluster pool
 */
public record OpenOptions(boolean readOnly, boolean direct, boolean followReferences, ImageOptions tuning) {
    public static final long DEFAULT_MAX_L2_CACHE = 32L << 20;

    /** Read-only, buffered, following references, default tuning. */
    public static OpenOptions readOnlyDefaults() {
        return new OpenOptions(true, false, true, ImageOptions.defaults());
    }

    /** Read-write, buffered, following references, default tuning. */
    public static OpenOptions readWriteDefaults() {
        return new OpenOptions(false, false, true, ImageOptions.defaults());
    }

    public OpenOptions withReadOnly(boolean v) {
        return new OpenOptions(v, direct, followReferences, tuning);
    }

    public OpenOptions withDirect(boolean v) {
        return new OpenOptions(readOnly, v, followReferences, tuning);
    }

    public OpenOptions withFollowReferences(boolean v) {
        return new OpenOptions(readOnly, direct, v, tuning);
    }

    public OpenOptions withTuning(ImageOptions v) {
        return new OpenOptions(readOnly, direct, followReferences, v);
    }

    public OpenOptions withL2CacheBytes(long v) {
        return withTuning(tuning.withL2CacheBytes(v));
    }

    public OpenOptions withPool(boolean v) {
        return withTuning(tuning.withPool(v));
    }
}
