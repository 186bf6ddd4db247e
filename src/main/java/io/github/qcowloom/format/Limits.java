package io.github.qcowloom.format;

import io.github.qcowloom.api.OutOfRangeException;

/** The limits QEMU enforces on qcow2 images (reference qcow2.md §1 "Limits enforced at open"). */
public final class Limits {
    private Limits() {
    }

    public static final int MIN_CLUSTER_BITS = 9;
    public static final int MAX_CLUSTER_BITS = 21;
    /** QCOW_MAX_REFTABLE_SIZE. */
    public static final long MAX_REFTABLE_BYTES = 8L << 20;
    /** QCOW_MAX_L1_SIZE. */
    public static final long MAX_L1_BYTES = 32L << 20;
    public static final int MAX_SNAPSHOTS = 65536;
    /** QCOW_MAX_SNAPSHOT_EXTRA_DATA. */
    public static final int MAX_SNAPSHOT_EXTRA_DATA = 1024;
    /** QCOW_MAX_SNAPSHOTS_SIZE: 1024 bytes per snapshot. */
    public static final long MAX_SNAPSHOT_TABLE_BYTES = 1024L * MAX_SNAPSHOTS;
    public static final int MAX_BACKING_NAME = 1023;
    /** QCOW2_MAX_BITMAPS. */
    public static final int MAX_BITMAPS = 65535;
    /** QCOW2_MAX_BITMAP_DIRECTORY_SIZE: 1024 bytes per bitmap. */
    public static final long MAX_BITMAP_DIRECTORY_BYTES = 1024L * MAX_BITMAPS;
    /** BME_MAX_PHYS_SIZE: the most bytes of bits QEMU keeps in memory for one bitmap. */
    public static final long MAX_BITMAP_BYTES = 0x20000000;
    /** BME_MAX_TABLE_SIZE: the most entries of one bitmap's table. */
    public static final long MAX_BITMAP_TABLE_ENTRIES = 0x8000000;
    /** BME_MIN_GRANULARITY_BITS and BME_MAX_GRANULARITY_BITS: a bit covers 512 bytes to 2 GiB. */
    public static final int MIN_BITMAP_GRANULARITY_BITS = 9;
    public static final int MAX_BITMAP_GRANULARITY_BITS = 31;
    /** BDRV_BITMAP_MAX_NAME_SIZE. */
    public static final int MAX_BITMAP_NAME_BYTES = 1023;
    public static final int MAX_REFCOUNT_ORDER = 6;
    /**
     * End of the host offsets an image can use: L1 and L2 entries hold offsets in bits 9-55, so nothing they
     * point to lies at or past 2^56. A reftable entry could name more (bits 9-63), but a refblock out there (or
     * one with bit 63 set, a negative offset) is refused as corruption before any I/O is tried.
     */
    public static final long MAX_HOST_OFFSET = 1L << 56;
    /** Extended L2 splits a cluster into 32 subclusters of at least 512 bytes. */
    public static final int MIN_EXTENDED_L2_CLUSTER_BITS = 14;
    public static final int SUBCLUSTERS_PER_CLUSTER = 32;
    public static final int V2_HEADER_LENGTH = 72;
    public static final int V3_MIN_HEADER_LENGTH = 104;
    /** Length of the header QEMU writes for v3 (struct QCowHeader padded to 8). */
    public static final int V3_HEADER_LENGTH = 112;

    /** BDRV_MAX_LENGTH: the most bytes QEMU's block layer lets a disk hold (INT64_MAX aligned down to 1 GiB). */
    public static final long MAX_DISK_LENGTH = Long.MAX_VALUE & -(1L << 30);

    /** A new disk size past {@link #MAX_DISK_LENGTH} refused, in the words of QEMU's bdrv_check_request. */
    public static void requireDiskLength(long size) throws OutOfRangeException {
        if (size > MAX_DISK_LENGTH) {
            throw new OutOfRangeException("offset(" + size + ") exceeds maximum(" + MAX_DISK_LENGTH + ")");
        }
    }

    /** Number of L1 entries needed for {@code size} bytes, or -1 when it overflows (QEMU's size_to_l1). */
    public static long sizeToL1(long size, int clusterBits, int l2Bits) {
        int shift = clusterBits + l2Bits;
        if (size < 0) {
            return -1;
        }
        if (shift >= 63) {
            return size == 0 ? 0 : 1;
        }
        long unit = 1L << shift;
        return size / unit + (size % unit == 0 ? 0 : 1);
    }
}
