package io.github.qcowloom.image;

import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.SubclusterType;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Discard and write-zeroes with QEMU's semantics (qcow2.md §3): whole clusters change their L2 entries (v3: the
 * zero flag, or with extended L2 an all-zero bitmap; v2: unallocated), freed clusters are dereferenced after the
 * next flush, and partial clusters are left alone by discard. Write-zeroes works in clusters, or with extended L2
 * in subclusters (their zero bits); the partial ones at either end are written as zeroes (QEMU's -ENOTSUP
 * fallback). A raw external data file is zeroed along with the metadata, so that it keeps holding the guest data.
 */
final class DiscardPath {
    private final ImageGeometry geometry;
    private final ClusterMapper mapper;
    private final MetadataWriter metadata;
    private final WritePath writePath;
    private final int version;
    /** The external data file when it is raw (data_file_raw): it must read as the guest sees the disk. Or null. */
    private final Storage rawDataFile;
    /** Zeroes for partial clusters, shared by all requests (never written to). */
    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

    DiscardPath(ImageGeometry geometry, ClusterMapper mapper, MetadataWriter metadata, WritePath writePath,
            int version, Storage rawDataFile) {
        this.geometry = geometry;
        this.mapper = mapper;
        this.metadata = metadata;
        this.writePath = writePath;
        this.version = version;
        this.rawDataFile = rawDataFile;
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
        boolean extended = geometry.extendedL2();
        metadata.rewriteWords(first, end - first, old -> {
            // discard_in_l2_slice: reads back as zeroes (v3) or unallocated (v2 without backing).
            if (!backing && !allocated(type(old.entry()))) {
                return old;
            }
            if (extended) {
                return new L2Words(0, L2Entry.BITMAP_ALL_ZEROES);
            }
            return new L2Words(version >= 3 ? L2Entry.ZERO : 0, 0);
        });
        // QEMU passes the discard on to the data file (qemu-io does by default); a raw one must read zeroes now.
        zeroRawDataFile(first * cs, Math.min(size, end * cs) - first * cs, true);
    }

    /**
     * QEMU's qcow2_co_pwrite_zeroes: whole clusters get the zero flag (freed when {@code mayUnmap}, or when
     * compressed); partial clusters at either end are written as zeroes. With extended L2 the same in subclusters.
     */
    void writeZeroes(long offset, long length, boolean mayUnmap, long size) throws IOException {
        if (geometry.extendedL2()) {
            writeZeroSubclusters(offset, length, mayUnmap, size);
            return;
        }
        long cs = geometry.clusterSize();
        long end = offset + length;
        long alignedStart = Math.min(end, ceilDiv(offset, cs) * cs);
        long alignedEnd = end == size ? end : Math.max(alignedStart, end / cs * cs);
        writeZeroBytes(offset, alignedStart - offset);
        if (alignedEnd > alignedStart) {
            zeroRawDataFile(alignedStart, alignedEnd - alignedStart, mayUnmap);
            zeroClusters(alignedStart / cs, ceilDiv(alignedEnd, cs) - alignedStart / cs, mayUnmap, size);
        }
        writeZeroBytes(alignedEnd, end - alignedEnd);
    }

    private void zeroClusters(long first, long count, boolean mayUnmap, long size) throws IOException {
        long cs = geometry.clusterSize();
        if (version < 3) {
            // v2 has no zero flag: without a backing file, unallocated reads as zeroes; with one, write zeroes.
            if (!metadata.hasBacking()) {
                metadata.rewrite(first, count, old -> 0);
            } else {
                writeZeroBytes(first * cs, Math.min(size, (first + count) * cs) - first * cs);
            }
            return;
        }
        boolean backing = metadata.hasBacking();
        boolean extended = geometry.extendedL2();
        metadata.rewriteWords(first, count, old -> {
            // zero_in_l2_slice: compressed clusters are always unmapped; others only when allowed.
            ClusterType type = type(old.entry());
            boolean unmap = type == ClusterType.COMPRESSED || (mayUnmap && allocated(type));
            long entry = unmap ? 0 : old.entry();
            if (extended) {
                return new L2Words(entry, L2Entry.BITMAP_ALL_ZEROES);
            }
            if (!backing && type == ClusterType.UNALLOCATED) {
                return old; // already reads as zeroes
            }
            return new L2Words(entry | L2Entry.ZERO, 0);
        });
    }

    /**
     * Extended L2, as the block layer splits the request for qcow2 (its write-zeroes alignment is the
     * subcluster): a partial subcluster at either end, then the whole subclusters between them
     * (qcow2_subcluster_zeroize). The end of the disk counts as a subcluster edge.
     */
    private void writeZeroSubclusters(long offset, long length, boolean mayUnmap, long size) throws IOException {
        long sc = geometry.subclusterSize();
        long end = offset + length;
        if (offset % sc != 0) {
            long headEnd = Math.min(end, Bytes.alignUp(offset, sc));
            zeroPartialSubcluster(offset, headEnd, mayUnmap, size);
            offset = headEnd;
        }
        long tailStart = end % sc == 0 || end == size ? end : Math.max(offset, end / sc * sc);
        if (tailStart > offset) {
            zeroize(offset, tailStart, mayUnmap, size);
        }
        if (end > tailStart) {
            zeroPartialSubcluster(tailStart, end, mayUnmap, size);
        }
    }

    /**
     * QEMU's qcow2_co_pwrite_zeroes for a request that covers only part of one subcluster: if the subcluster is
     * unallocated or zero and the rest of it reads as zeroes, the whole subcluster becomes a zero subcluster;
     * otherwise the bytes are written as zeroes. Unallocated subclusters over a backing file count as not zero
     * here (QEMU asks the backing file's block status, which a BlockDevice does not tell).
     */
    private void zeroPartialSubcluster(long from, long to, boolean mayUnmap, long size) throws IOException {
        long cluster = from >>> geometry.clusterBits();
        int sc = (int) ((from & (geometry.clusterSize() - 1)) / geometry.subclusterSize());
        L2Ref ref = mapper.lookup(cluster);
        SubclusterType type = L2Entry.subclusterType(ref.entry(), ref.bitmap(), sc, geometry.hasDataFile());
        boolean zero = switch (type) {
            case ZERO_PLAIN, ZERO_ALLOC -> true;
            case UNALLOCATED_PLAIN, UNALLOCATED_ALLOC -> !metadata.hasBacking();
            case NORMAL, COMPRESSED, INVALID -> false;
        };
        if (!zero) {
            writeZeroBytes(from, to - from);
            return;
        }
        long start = from - from % geometry.subclusterSize();
        zeroize(start, start + geometry.subclusterSize(), mayUnmap, size);
    }

    /**
     * QEMU's qcow2_subcluster_zeroize of {@code [from, to)} (subcluster-aligned, or reaching the end of the disk):
     * the subclusters of a partial cluster at either end get their zero bits, whole clusters an all-zero bitmap.
     */
    private void zeroize(long from, long to, boolean mayUnmap, long size) throws IOException {
        int bits = geometry.clusterBits();
        long cs = geometry.clusterSize();
        int sc = geometry.subclusterSize();
        zeroRawDataFile(from, Math.min(to, size) - from, mayUnmap);
        long head = Math.min(to, Bytes.alignUp(from, cs)) - from;
        if (head > 0) {
            int first = (int) ((from & (cs - 1)) / sc);
            zeroSubclusters(from >>> bits, first, first + (int) ceilDiv(head, sc));
            from += head;
        }
        long tail = to >= size ? 0 : to - Math.max(from, to & -cs);
        if (to - tail > from) {
            zeroClusters(from >>> bits, ceilDiv(to - tail - from, cs), mayUnmap, size);
        }
        if (tail > 0) {
            zeroSubclusters((to - tail) >>> bits, 0, (int) ceilDiv(tail, sc));
        }
    }

    /**
     * QEMU's zero_l2_subclusters: subclusters {@code [from, to)} of one cluster read as zeroes, not allocated;
     * their host bytes stay in place. A compressed cluster cannot be zeroed in part (QEMU: -ENOTSUP), so those
     * subclusters are written as zeroes instead, which copies the cluster.
     */
    private void zeroSubclusters(long cluster, int from, int to) throws IOException {
        L2Ref ref = mapper.lookup(cluster);
        if (type(ref.entry()) == ClusterType.COMPRESSED) {
            long sc = geometry.subclusterSize();
            writeZeroBytes((cluster << geometry.clusterBits()) + from * sc, (to - from) * sc);
            return;
        }
        metadata.rewriteWords(cluster, 1, old -> type(old.entry()) == ClusterType.COMPRESSED ? old
                : new L2Words(old.entry(), L2Entry.withZeroed(old.bitmap(), from, to)));
    }

    /**
     * With data_file_raw, QEMU zeroes the data file with the metadata (and passes discards on to it), so that the
     * file stays the guest's disk; unmapping punches a hole where it can. No ordering against the L2 change is
     * needed: a crash between them shows the zeroes through the old entries, which is what the request asked for.
     */
    private void zeroRawDataFile(long offset, long length, boolean unmap) throws IOException {
        if (rawDataFile == null || length <= 0) {
            return;
        }
        if (unmap) {
            rawDataFile.punchHole(offset, length);
        } else {
            rawDataFile.writeZeroes(offset, length);
        }
    }

    private void writeZeroBytes(long offset, long length) throws IOException {
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(length - done, ZEROES.capacity());
            writePath.write(offset + done, ZEROES.duplicate().limit(n));
            done += n;
        }
    }

    private ClusterType type(long entry) {
        return L2Entry.type(entry, geometry.extendedL2(), geometry.hasDataFile());
    }

    private static boolean allocated(ClusterType t) {
        return t == ClusterType.NORMAL || t == ClusterType.COMPRESSED || t == ClusterType.ZERO_ALLOC;
    }

    private static long ceilDiv(long a, long b) {
        return Math.floorDiv(a + b - 1, b);
    }
}
