package io.github.qcowloom.format;

/** The five kinds of standard L2 entry (QEMU's qcow2_get_cluster_type). */
public enum ClusterType {
    /** Offset 0, no flags: reads from the backing file, or zeroes. */
    UNALLOCATED,
    /** Zero flag without an offset. */
    ZERO_PLAIN,
    /** Zero flag with a preallocated host cluster. */
    ZERO_ALLOC,
    /** Data in a host cluster. */
    NORMAL,
    /** Compressed data described by a {@link CompressedDescriptor}. */
    COMPRESSED
}
