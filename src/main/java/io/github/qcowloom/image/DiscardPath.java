package io.github.qcowloom.image;

import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.L2Entry;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Discard and write-zeroes with QEMU's semantics (qcow2.md §3): whole clusters change their L2 entries (v3: the
 * zero flag; v2: unallocated), freed clusters are dereferenced after the next flush, and partial clusters are
 * left alone by discard and written as zeroes by write-zeroes (QEMU's -ENOTSUP fallback).
 */
final class DiscardPath {
    private final ImageGeometry geometry;
    private final MetadataWriter metadata;
    private final WritePath writePath;
    private final int version;
    /** Zeroes for partial clusters, shared by all requests (never written to). */
    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

    DiscardPath(ImageGeometry geometry, MetadataWriter metadata, WritePath writePath, int version) {
        this.geometry = geometry;
        this.metadata = metadata;
        this.writePath = writePath;
        this.version = version;
    }

    /**
     * QEMU's qcow2_co_pdiscard: only whole clusters (and the partial last cluster of the disk) are discarded;
     * on v2 with a backing file nothing is, as QEMU answers -ENOTSUP and the block layer ignores it.
     */
    void discard(long offset, long length, long size) throws IOException {
        if (version < 3 && metadata.hasBacking()) {
            return;
        }
        long cs = geometry.clusterSize();
        long first = ceilDiv(offset, cs);
        long end = offset + length == size ? ceilDiv(size, cs) : (offset + length) / cs;
        if (end <= first) {
            return;
        }
        boolean backing = metadata.hasBacking();
        metadata.rewrite(first, end - first, old -> {
            // discard_in_l2_slice: reads back as zeroes (v3) or unallocated (v2 without backing).
            ClusterType type = L2Entry.type(old, false, false);
            if (!backing && !allocated(type)) {
                return old;
            }
            return version >= 3 ? L2Entry.ZERO : 0;
        });
    }

    /**
     * QEMU's qcow2_co_pwrite_zeroes: whole clusters get the zero flag (freed when {@code mayUnmap}, or when
     * compressed); partial clusters at either end are written as zeroes.
     */
    void writeZeroes(long offset, long length, boolean mayUnmap, long size) throws IOException {
        long cs = geometry.clusterSize();
        long end = offset + length;
        long alignedStart = Math.min(end, ceilDiv(offset, cs) * cs);
        long alignedEnd = end == size ? end : Math.max(alignedStart, end / cs * cs);
        writeZeroBytes(offset, alignedStart - offset);
        if (alignedEnd > alignedStart) {
            zeroClusters(alignedStart / cs, ceilDiv(alignedEnd, cs) - alignedStart / cs, mayUnmap, size);
        }
        writeZeroBytes(alignedEnd, end - alignedEnd);
    }

    private void zeroClusters(long first, long count, boolean mayUnmap, long size) throws IOException {
        if (version < 3) {
            // v2 has no zero flag: without a backing file, unallocated reads as zeroes; with one, write zeroes.
            if (!metadata.hasBacking()) {
                metadata.rewrite(first, count, old -> 0);
            } else {
                writeZeroBytes(first * geometry.clusterSize(),
                        Math.min(size, (first + count) * geometry.clusterSize()) - first * geometry.clusterSize());
            }
            return;
        }
        boolean backing = metadata.hasBacking();
        metadata.rewrite(first, count, old -> {
            // zero_in_l2_slice: compressed clusters are always unmapped; others only when allowed.
            ClusterType type = L2Entry.type(old, false, false);
            if (!backing && type == ClusterType.UNALLOCATED) {
                return old; // already reads as zeroes
            }
            boolean unmap = type == ClusterType.COMPRESSED || (mayUnmap && allocated(type));
            return (unmap ? 0 : old) | L2Entry.ZERO;
        });
    }

    private void writeZeroBytes(long offset, long length) throws IOException {
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(length - done, ZEROES.capacity());
            writePath.write(offset + done, ZEROES.duplicate().limit(n));
            done += n;
        }
    }

    private static boolean allocated(ClusterType t) {
        return t == ClusterType.NORMAL || t == ClusterType.COMPRESSED || t == ClusterType.ZERO_ALLOC;
    }

    private static long ceilDiv(long a, long b) {
        return Math.floorDiv(a + b - 1, b);
    }
}
