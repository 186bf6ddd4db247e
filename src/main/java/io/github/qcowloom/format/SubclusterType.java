package io.github.qcowloom.format;

/** The kinds of one subcluster of an extended L2 entry (QEMU's qcow2_get_subcluster_type). */
public enum SubclusterType {
    NORMAL,
    COMPRESSED,
    ZERO_PLAIN,
    ZERO_ALLOC,
    /** Host cluster allocated, but this subcluster reads from the backing file. */
    UNALLOCATED_ALLOC,
    UNALLOCATED_PLAIN,
    /** The bitmap contradicts itself or the entry; reads fail as corrupt. */
    INVALID
}
