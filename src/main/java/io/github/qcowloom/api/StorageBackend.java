package io.github.qcowloom.api;

/** How image files are read and written (profile key {@code storage}). */
public enum StorageBackend {
    /** Positional FileChannel calls: runs everywhere; a virtual thread blocked in one holds a carrier. */
    FILECHANNEL("filechannel"),
    /**
     * io_uring through the FFM API (Java 22+, Linux): requests in flight share system calls and park their
     * virtual threads instead of blocking carriers. Falls back to FileChannel where it cannot run.
     */
    IO_URING("io_uring");

    /** The default: the faster of the two on the machines measured (see the README's benchmark section). */
    public static final StorageBackend DEFAULT = IO_URING;

    private final String key;

    StorageBackend(String key) {
        this.key = key;
    }

    /** The profile value: {@code filechannel} or {@code io_uring}. */
    public String key() {
        return key;
    }

    /** Parses a profile value. */
    public static StorageBackend parse(String value) {
        for (StorageBackend b : values()) {
            if (b.key.equals(value)) {
                return b;
            }
        }
        throw new IllegalArgumentException("storage must be 'io_uring' or 'filechannel', not '" + value + "'");
    }

    @Override
    public String toString() {
        return key;
    }
}
