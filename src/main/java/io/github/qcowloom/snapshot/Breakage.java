package io.github.qcowloom.snapshot;

/**
 * A deliberate break of one of the snapshot code's ordering rules (or of the apply's atomicity), passed down by the
 * package-private overloads of {@link Snapshots}' operations; only SnapshotOrderingBitesTest, which proves the crash
 * kit catches each, passes anything but {@link #NONE}.
 */
enum Breakage {
    /** The operations as they are meant to run. */
    NONE,
    /**
     * The apply's atomicity: the active L1 table is first written (and synced) half the snapshot's and half the old
     * one, then whole, so a crash between leaves a disk that is neither.
     */
    HALF_SWITCHED_APPLY,
    /**
     * The delete's free ordering: the snapshot's tree loses its references, durably, before the table without the
     * snapshot is written, so a crash between leaves a listed snapshot with refcounts below its references.
     */
    REFCOUNTS_BEFORE_TABLE,
    /**
     * The table ordering: the header points to the new snapshot table before the table is synced, so a crash can keep
     * the header write and drop the table's, leaving a header that points to whatever those clusters held.
     */
    TABLE_UNSYNCED
}
