package io.github.qcowloom.crashkit;

/** What a simulated crash does to the writes that were issued but not yet ordered by a completed flush. */
public enum CrashMode {
    /** Each unflushed write survives whole or not at all; a dropped write leaves the old bytes (the default). */
    SECTOR_ATOMIC,
    /** As {@link #SECTOR_ATOMIC}, but a dropped write's region and newly extended space hold garbage (SQLite). */
    TORN,
    /** The process died, the host did not: every issued write survives, so the only state is the final one. */
    PROCESS_KILL
}
