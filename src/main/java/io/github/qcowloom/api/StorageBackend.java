package io.github.qcowloom.api;

/** How image files are read and written (profile key {@code storage}). */
public enum StorageBackend {
    /** Positional FileChannel calls: runs everywhere; a virtual thread blocked in one holds a carrier. */
    FILECHANNEL("filechannel"),
    /**
     * io_uring through the FFM API (Java 22+, Linux): requests in flight share system calls and park their
     * virtual threads instead of blocking carriers. Falls back to FileChannel where it cannot run.
     */
    IO_URING("io_uring"),
    /**
     * io_uring with O_DIRECT, FileChannel through the page cache: the faster of the two in each mode as measured
     * (README, Benchmarks). A page-cache hit costs FileChannel one short system call on the carrier, while
     * io_uring off the event loops adds a ring round trip, and buffered writes go to io_uring's worker threads.
     * A server whose connections run on event loops opens its files with io_uring through the page cache too
     * (ServeCommand): there the loops read what the cache holds and make most writes on their own thread.
     */
    AUTO("auto");

    /** The default. */
    public static final StorageBackend DEFAULT = AUTO;

    private final String key;

    StorageBackend(String key) {
        this.key = key;
    }

    /** The profile value: {@code auto}, {@code filechannel} or {@code io_uring}. */
    public String key() {
        return key;
    }

    /** The backend that runs for a file opened with or without O_DIRECT: AUTO chooses, the others stay. */
    public StorageBackend resolve(boolean direct) {
        return this != AUTO ? this : direct ? IO_URING : FILECHANNEL;
    }

    /** Parses a profile value. */
    public static StorageBackend parse(String value) {
        for (StorageBackend b : values()) {
            if (b.key.equals(value)) {
                return b;
            }
        }
        throw new IllegalArgumentException("storage must be 'auto', 'io_uring' or 'filechannel', not '" + value
                + "'");
    }

    @Override
    public String toString() {
        return key;
    }
}
