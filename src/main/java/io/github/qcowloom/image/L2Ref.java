package io.github.qcowloom.image;

/**
 * What the L2 table says about one guest cluster: the entry and, with extended L2, its subcluster bitmap
 * (0 otherwise). {@code l2Offset} is 0 when the L1 entry is empty.
 */
record L2Ref(long l2Offset, long entry, long bitmap) {
    static final L2Ref UNALLOCATED = new L2Ref(0, 0, 0);
}
