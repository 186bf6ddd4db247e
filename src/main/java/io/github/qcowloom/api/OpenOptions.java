package io.github.qcowloom.api;

/**
 * How to open an image.
 *
 * @param readOnly open the file read-only; a corrupt image can only be opened so
 * @param direct use O_DIRECT for the image file (and its data file)
 * @param followReferences open the backing file and external data file the image names; when false, reads
 *     that need them fail, which is what metadata-only inspection (info) wants (CVE-2024-4467)
 * @param l2CacheBytes bytes of L2 tables kept in memory; 0 means QEMU's default, enough for the whole disk up
 *     to 32 MiB
 */
public record OpenOptions(boolean readOnly, boolean direct, boolean followReferences, long l2CacheBytes) {
    public static final long DEFAULT_MAX_L2_CACHE = 32L << 20;

    public OpenOptions {
        if (l2CacheBytes < 0) {
            throw new IllegalArgumentException("l2CacheBytes " + l2CacheBytes);
        }
    }

    /** Read-only, buffered, following references, default cache. */
    public static OpenOptions readOnlyDefaults() {
        return new OpenOptions(true, false, true, 0);
    }

    /** Read-write, buffered, following references, default cache. */
    public static OpenOptions readWriteDefaults() {
        return new OpenOptions(false, false, true, 0);
    }

    public OpenOptions withReadOnly(boolean v) {
        return new OpenOptions(v, direct, followReferences, l2CacheBytes);
    }

    public OpenOptions withDirect(boolean v) {
        return new OpenOptions(readOnly, v, followReferences, l2CacheBytes);
    }

    public OpenOptions withFollowReferences(boolean v) {
        return new OpenOptions(readOnly, direct, v, l2CacheBytes);
    }

    public OpenOptions withL2CacheBytes(long v) {
        return new OpenOptions(readOnly, direct, followReferences, v);
    }
}
