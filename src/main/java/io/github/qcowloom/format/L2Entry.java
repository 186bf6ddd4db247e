package io.github.qcowloom.format;

/**
 * Codec of an L2 entry (and, with extended L2, of its 64-bit subcluster bitmap): classifies it into a
 * {@link ClusterType} or {@link SubclusterType} exactly as QEMU does.
 */
public final class L2Entry {
    private L2Entry() {
    }

    public static final long OFFSET_MASK = 0x00fffffffffffe00L;
    public static final long COPIED = 1L << 63;
    public static final long COMPRESSED = 1L << 62;
    public static final long ZERO = 1L;
    /** Bits that must be zero in a standard entry; reported only by check. */
    public static final long RESERVED_MASK = 0x3f000000000001feL;
    /** Bitmap bits: low word "allocated", high word "reads as zero". */
    public static final long BITMAP_ALLOC_MASK = 0xffffffffL;
    /** A bitmap whose every subcluster reads as zeroes (QEMU's QCOW_L2_BITMAP_ALL_ZEROES). */
    public static final long BITMAP_ALL_ZEROES = 0xffffffff00000000L;

    /** The entry (with extended L2, its first word) of the data cluster at {@code hostOffset}, owned alone. */
    public static long owned(long hostOffset) {
        return hostOffset | COPIED;
    }

    /** {@code entry} reading as zeroes in a standard table: the zero flag set, a host cluster it has kept. */
    public static long withZeroFlag(long entry) {
        return entry | ZERO;
    }

    public static long hostOffset(long entry) {
        return entry & OFFSET_MASK;
    }

    public static boolean copied(long entry) {
        return (entry & COPIED) != 0;
    }

    /**
     * The type of a standard entry. {@code hasDataFile}: with an external data file, offset 0 plus COPIED is a
     * normal cluster at host offset 0. {@code extendedL2}: the zero flag is not used there.
     */
    public static ClusterType type(long entry, boolean extendedL2, boolean hasDataFile) {
        if ((entry & COMPRESSED) != 0) {
            return ClusterType.COMPRESSED;
        }
        if ((entry & ZERO) != 0 && !extendedL2) {
            return hostOffset(entry) != 0 ? ClusterType.ZERO_ALLOC : ClusterType.ZERO_PLAIN;
        }
        if (hostOffset(entry) == 0) {
            return hasDataFile && copied(entry) ? ClusterType.NORMAL : ClusterType.UNALLOCATED;
        }
        return ClusterType.NORMAL;
    }

    /**
     * The type of subcluster {@code sc} (0..31) of an extended entry with {@code bitmap}, as QEMU's
     * qcow2_get_subcluster_type gives it. A compressed cluster is COMPRESSED whatever its bitmap: QEMU reads it,
     * and only check reports a non-zero bitmap there.
     */
    public static SubclusterType subclusterType(long entry, long bitmap, int sc, boolean hasDataFile) {
        return switch (type(entry, true, hasDataFile)) {
            case COMPRESSED -> SubclusterType.COMPRESSED;
            case NORMAL -> ((bitmap >>> 32) & bitmap) != 0 ? SubclusterType.INVALID : withClusterType(bitmap, sc);
            case UNALLOCATED -> (bitmap & BITMAP_ALLOC_MASK) != 0 ? SubclusterType.INVALID
                    : withoutClusterType(bitmap, sc);
            // Unreachable: extended L2 does not use the zero flag.
            case ZERO_PLAIN, ZERO_ALLOC -> SubclusterType.INVALID;
        };
    }

    /** Subcluster {@code sc} of an entry with a host cluster and a valid {@code bitmap}: zeroes, allocated, or neither. */
    public static SubclusterType withClusterType(long bitmap, int sc) {
        if ((bitmap & (1L << (32 + sc))) != 0) {
            return SubclusterType.ZERO_ALLOC;
        }
        return (bitmap & (1L << sc)) != 0 ? SubclusterType.NORMAL : SubclusterType.UNALLOCATED_ALLOC;
    }

    /** Subcluster {@code sc} of an entry without a host cluster and with a valid {@code bitmap}: zeroes or nothing. */
    public static SubclusterType withoutClusterType(long bitmap, int sc) {
        return (bitmap & (1L << (32 + sc))) != 0 ? SubclusterType.ZERO_PLAIN : SubclusterType.UNALLOCATED_PLAIN;
    }

    /** The "allocated" bits of subclusters {@code [from, to)} (QEMU's QCOW_OFLAG_SUB_ALLOC_RANGE). */
    public static long allocRange(int from, int to) {
        return ((1L << (to - from)) - 1) << from;
    }

    /** The "reads as zero" bits of subclusters {@code [from, to)} (QEMU's QCOW_OFLAG_SUB_ZERO_RANGE). */
    public static long zeroRange(int from, int to) {
        return allocRange(from, to) << 32;
    }

    /**
     * {@code bitmap} with subclusters {@code [from, to)} allocated and their zero bits cleared, the others as they
     * were: what qcow2_alloc_cluster_link_l2 leaves after a write filled them.
     */
    public static long withAllocated(long bitmap, int from, int to) {
        return (bitmap | allocRange(from, to)) & ~zeroRange(from, to);
    }

    /** {@code bitmap} with subclusters {@code [from, to)} reading as zeroes, not allocated (zero_l2_subclusters). */
    public static long withZeroed(long bitmap, int from, int to) {
        return (bitmap | zeroRange(from, to)) & ~allocRange(from, to);
    }

}
