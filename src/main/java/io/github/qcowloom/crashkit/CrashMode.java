package io.github.qcowloom.crashkit;

/** What a simulated crash does to the writes that were issued but not yet ordered by a completed flush. */
public enum CrashMode {
    /** Each unflushed write survives whole or not at all; a dropped write leaves the old bytes (the default). */
    SECTOR_ATOMIC,
    /**
     * As {@link #SECTOR_ATOMIC}, but a dropped write's region and newly extended space hold garbage (SQLite). A
     * torn in-place metadata update (an L2 table or refblock rewrite) is beyond what qcow2 survives, QEMU's
     * included, so no driver passes the invariants in this mode; it shows what such damage looks like.
     */
    TORN,
    /**
     * Torn appends (ALICE's model of a file system that persists a file's new size before its data): writes
     * inside the file as it was at the last completed flush stay sector-atomic, but a dropped write to space
     * beyond it holds garbage, the file extended over it. Space a write extended the file over without
     * writing reads as zeros (a hole). A driver must not let a crash expose appended space it did not make
     * durable first: this is the mode the crash property checks besides {@link #SECTOR_ATOMIC}.
     */
    TORN_APPENDS,
    /** The process died, the host did not: every issued write survives, so the only state is the final one. */
    PROCESS_KILL
}
