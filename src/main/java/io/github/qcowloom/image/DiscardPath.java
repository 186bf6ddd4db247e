package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.function.UnaryOperator;

/**
 * Discard and write-zeroes with QEMU's semantics (qcow2.md §3): whole clusters change their L2 entries (v3: the
 * zero flag, or with extended L2 an all-zero bitmap; v2: unallocated), freed clusters are dereferenced after the
 * next flush, and partial clusters are left alone by discard. Write-zeroes works in the units QEMU's block layer
 * splits it into for qcow2 (subclusters, or clusters with standard L2): a partial unit is zeroized whole when the
 * rest of it reads as zeroes and it holds no data, and written as zeroes otherwise, as is whatever QEMU answers
 * -ENOTSUP for. Like QEMU's get_cluster_table, both allocate (or copy from a snapshot) the L2 tables of the clusters
 * they cover even where no entry changes. A raw external data file is zeroed along with the metadata, so that it
 * keeps holding the guest data; in any other external data file the clusters unmapped are discarded, as QEMU's
 * qcow2_free_any_cluster passes them on (its clusters have no refcounts, so no flush frees them).
 *
 * <p>Locks: every L2 entry change here is made holding the guest cluster's {@link ClusterLocks} entry, as writes
 * that allocate hold it from their copy-on-write read to their L2 update; otherwise a write in flight would link a
 * cluster copied before the change and undo it (with extended L2, mark zeroed subclusters allocated again). Order:
 * the image lock (shared, taken by {@link Qcow2Image}), then one guest cluster's lock at a time (reentrant: a
 * partial unit holds it across its test, its zeroizing and its fallback write), then the metadata lock (inside
 * {@link MetadataWriter}). A growing resize calls in holding the image lock exclusively and the metadata lock; no
 * request then holds a cluster lock, so taking one there cannot deadlock.
 */
final class DiscardPath {
    private final ImageGeometry geometry;
    private final ClusterMapper mapper;
    private final MetadataWriter metadata;
    private final WritePath writePath;
    /** Block status through the backing chain, for QEMU's is_zero test of what a partial unit leaves alone. */
    private final BlockStatusPath statusPath;
    private final int version;
    /** The external data file, or null. Its clusters sit at their guest offsets. */
    private final Storage dataFile;
    /** The data file is raw (data_file_raw): it must read as the guest sees the disk. */
    private final boolean dataFileRaw;
    /** Zeroes for partial clusters, shared by all requests (never written to). */
    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

    DiscardPath(ImageGeometry geometry, ClusterMapper mapper, MetadataWriter metadata, WritePath writePath,
            BlockStatusPath statusPath, int version, Storage dataFile, boolean dataFileRaw) {
        this.geometry = geometry;
        this.mapper = mapper;
        this.metadata = metadata;
        this.writePath = writePath;
        this.statusPath = statusPath;
        this.version = version;
        this.dataFile = dataFile;
        this.dataFileRaw = dataFileRaw;
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
        discardClusters(first, end - first);
        // QEMU passes the discard on to the data file (qemu-io does by default); a raw one must read zeroes now.
        zeroRawDataFile(first * cs, Math.min(size, end * cs) - first * cs, true);
    }

    /**
     * QEMU's full discard of every cluster this image holds (qcow2_make_empty's fallback): each run the image holds
     * itself becomes unallocated, its subcluster bits cleared; runs it does not hold are left alone, tables and all.
     */
    void dropAll(long size) throws IOException {
        long cs = geometry.clusterSize();
        for (long offset = 0; offset < size; ) {
            BlockStatus own = statusPath.ownStatus(offset, size - offset);
            long end = offset + own.length();
            if (own.present() || own.host() != null) { // a preallocated unallocated cluster keeps a host one
                long first = offset / cs;
                rewriteLocked(first, ceilDiv(end, cs) - first, old -> new L2Words(0, 0));
                zeroRawDataFile(first * cs, Math.min(size, ceilDiv(end, cs) * cs) - first * cs, true);
            }
            offset = end;
        }
    }

    /** QEMU's discard_in_l2_slice (not a full discard): the clusters read back as zeroes (v3) or unallocated (v2). */
    private void discardClusters(long first, long count) throws IOException {
        boolean backing = metadata.hasBacking();
        boolean extended = geometry.extendedL2();
        rewriteLocked(first, count, old -> {
            if (!backing && !allocated(type(old.entry()))) {
                return old;
            }
            if (extended) {
                return new L2Words(0, L2Entry.BITMAP_ALL_ZEROES);
            }
            return new L2Words(version >= 3 ? L2Entry.ZERO : 0, 0);
        });
    }

    /**
     * QEMU's write-zeroes as bdrv_co_do_pwrite_zeroes splits it for qcow2, whose write-zeroes alignment is the
     * subcluster (the cluster with standard L2): a partial unit at either end, then the whole units between them,
     * the end of the disk counting as a unit edge. Whole units are zeroized in the metadata where QEMU can, and
     * written as zeroes where it answers -ENOTSUP (the block layer's fallback).
     */
    void writeZeroes(long offset, long length, boolean mayUnmap, long size) throws IOException {
        writeZeroes(offset, length, mayUnmap, false, size);
    }

    /**
     * {@link #writeZeroes(long, long, boolean, long)}; with {@code noFallback} (QEMU's BDRV_REQ_NO_FALLBACK) nothing
     * is written as zeroes: the first piece that would need it ends the request, false, the pieces before it
     * zeroized, as QEMU leaves them; version 2 (QEMU's qcow2 takes BDRV_REQ_NO_FALLBACK from version 3 on) and a
     * raw data file, which would be zeroed too, give false at once. True once the range reads as zeroes.
     */
    boolean writeZeroes(long offset, long length, boolean mayUnmap, boolean noFallback, long size)
            throws IOException {
        if (noFallback && (version < 3 || dataFileRaw)) {
            return false;
        }
        long unit = zeroUnit();
        long end = offset + length;
        if (offset % unit != 0) {
            long headEnd = Math.min(end, Bytes.alignUp(offset, unit));
            if (!zeroPartialUnit(offset, headEnd, mayUnmap, noFallback, size)) {
                return false;
            }
            offset = headEnd;
        }
        long tailStart = end % unit == 0 || end == size ? end : Math.max(offset, end / unit * unit);
        if (tailStart > offset && !zeroize(offset, tailStart, mayUnmap, size)) {
            if (noFallback) {
                return false;
            }
            writeZeroBytes(offset, tailStart - offset);
        }
        return end <= tailStart || zeroPartialUnit(tailStart, end, mayUnmap, noFallback, size);
    }

    /** The block layer's write-zeroes alignment for qcow2 (QEMU's pwrite_zeroes_alignment = subcluster_size). */
    private long zeroUnit() {
        return geometry.extendedL2() ? geometry.subclusterSize() : geometry.clusterSize();
    }

    /**
     * QEMU's qcow2_co_pwrite_zeroes for a piece {@code [from, to)} of one unit: if the unit holds no data
     * (unallocated or zero) and the rest of it reads as zeroes, the whole unit is zeroized; otherwise the piece is
     * written as zeroes, or with {@code noFallback} left as it is (false). The guest cluster's lock is held
     * throughout, so that no writer can put data into the rest of the unit between the test and the zeroizing (the
     * lock is reentrant: the fallback write takes it again).
     */
    private boolean zeroPartialUnit(long from, long to, boolean mayUnmap, boolean noFallback, long size)
            throws IOException {
        long unit = zeroUnit();
        long start = from - from % unit;
        long cluster = start >>> geometry.clusterBits();
        int sc = (int) ((start & (geometry.clusterSize() - 1)) / geometry.subclusterSize());
        ClusterLocks locks = writePath.clusterLocks();
        ClusterLocks.Held held = locks.lock(cluster);
        try {
            boolean noData = switch (mapper.lookup(new GuestCluster(cluster)).subcluster(sc)) {
                case UNALLOCATED_PLAIN, UNALLOCATED_ALLOC, ZERO_PLAIN, ZERO_ALLOC -> true;
                case NORMAL, COMPRESSED, INVALID -> false;
            };
            boolean zeroize = noData && statusPath.readsAsZero(start, from)
                    && statusPath.readsAsZero(to, Math.min(start + unit, size));
            if (zeroize && zeroize(start, start + unit, mayUnmap, size)) {
                return true;
            }
            if (noFallback) {
                return false;
            }
            writeZeroBytes(from, to - from);
            return true;
        } finally {
            locks.unlock(cluster, held);
        }
    }

    /**
     * QEMU's qcow2_subcluster_zeroize of {@code [from, to)} (unit-aligned, or reaching the end of the disk): v3 sets
     * the zero flag of whole clusters (with extended L2 an all-zero bitmap) and the zero bits of the subclusters of a
     * partial cluster at either end; v2 without a backing file discards instead. False where QEMU answers -ENOTSUP
     * and the caller must write zeroes: v2 with a backing file, or a compressed cluster only some of whose
     * subclusters are to be zeroed (the metadata of the clusters before it may have been zeroized already, as in
     * QEMU).
     */
    private boolean zeroize(long from, long to, boolean mayUnmap, long size) throws IOException {
        int bits = geometry.clusterBits();
        long cs = geometry.clusterSize();
        int sc = geometry.subclusterSize();
        zeroRawDataFile(from, Math.min(to, size) - from, mayUnmap);
        if (version < 3) {
            if (metadata.hasBacking()) {
                return false; // no zero flag, and unallocated would show the backing file
            }
            discardClusters(from >>> bits, ceilDiv(Math.min(to, size) - from, cs));
            return true;
        }
        long head = Math.min(to, Bytes.alignUp(from, cs)) - from;
        if (head > 0) {
            int first = (int) ((from & (cs - 1)) / sc);
            if (!zeroSubclusters(from >>> bits, first, first + (int) ceilDiv(head, sc))) {
                return false;
            }
            from += head;
        }
        long tail = to >= size ? 0 : to - Math.max(from, to & -cs);
        if (to - tail > from) {
            zeroClusters(from >>> bits, ceilDiv(to - tail - from, cs), mayUnmap);
        }
        return tail == 0 || zeroSubclusters((to - tail) >>> bits, 0, (int) ceilDiv(tail, sc));
    }

    /**
     * QEMU's zero_in_l2_slice: whole clusters read as zeroes, unallocated ones included; compressed clusters are
     * always unmapped, other allocated ones only when {@code mayUnmap} (else they keep their host cluster).
     */
    private void zeroClusters(long first, long count, boolean mayUnmap) throws IOException {
        boolean extended = geometry.extendedL2();
        rewriteLocked(first, count, old -> {
            ClusterType type = type(old.entry());
            boolean unmap = type == ClusterType.COMPRESSED || (mayUnmap && allocated(type));
            long entry = unmap ? 0 : old.entry();
            return extended ? new L2Words(entry, L2Entry.BITMAP_ALL_ZEROES)
                    : new L2Words(L2Entry.withZeroFlag(entry), 0);
        });
    }

    /**
     * QEMU's zero_l2_subclusters: subclusters {@code [from, to)} of one cluster read as zeroes, not allocated;
     * their host bytes stay in place. False, changing nothing, for a compressed cluster, which cannot be zeroed in
     * part (QEMU: -ENOTSUP).
     */
    private boolean zeroSubclusters(long cluster, int from, int to) throws IOException {
        boolean[] compressed = new boolean[1];
        rewriteLocked(cluster, 1, old -> {
            compressed[0] = type(old.entry()) == ClusterType.COMPRESSED;
            return compressed[0] ? old : new L2Words(old.entry(), L2Entry.withZeroed(old.bitmap(), from, to));
        });
        return !compressed[0];
    }

    /**
     * {@link MetadataWriter#rewriteWords} of clusters {@code [first, first + count)}, each under its guest cluster's
     * lock, one cluster at a time: a write that is copying one of them on write finishes (links its new cluster)
     * before the entry changes, and one that starts later reads the changed entry. Holding one lock at a time keeps
     * the lock order of writes; a request is not atomic against a crash anyway.
     *
     * <p>In an external data file that is not raw, a cluster whose entry lost its allocation is discarded while its
     * lock is still held, as QEMU's qcow2_free_any_cluster passes it on (such clusters have no refcounts, so no flush
     * frees them; a raw data file is zeroed by the callers). Under the lock, no write can have linked the cluster
     * again (it sits at its guest offset, so the next allocation takes it back at once) and lose its data to the
     * discard. A failed discard is ignored, as QEMU ignores it.
     */
    private void rewriteLocked(long first, long count, UnaryOperator<L2Words> rewrite) throws IOException {
        ClusterLocks locks = writePath.clusterLocks();
        boolean passDiscards = dataFile != null && !dataFileRaw;
        boolean[] unmapped = new boolean[1];
        for (long c = first; c < first + count; c++) {
            ClusterLocks.Held held = locks.lock(c);
            try {
                unmapped[0] = false;
                metadata.rewriteWords(c, 1, old -> {
                    L2Words changed = rewrite.apply(old);
                    unmapped[0] = allocated(type(old.entry())) && !allocated(type(changed.entry()));
                    return changed;
                });
                if (passDiscards && unmapped[0]) {
                    dataFile.discard(c * geometry.clusterSize(), geometry.clusterSize());
                }
            } finally {
                locks.unlock(c, held);
            }
        }
    }

    /**
     * With data_file_raw, QEMU zeroes the data file with the metadata (and passes discards on to it), so that the
     * file stays the guest's disk; unmapping punches a hole where it can. No ordering against the L2 change is
     * needed: a crash between them shows the zeroes through the old entries, which is what the request asked for.
     */
    private void zeroRawDataFile(long offset, long length, boolean unmap) throws IOException {
        if (!dataFileRaw || length <= 0) {
            return;
        }
        if (unmap) {
            dataFile.punchHole(offset, length);
        } else {
            dataFile.zeroKeepingSpace(offset, length);
        }
    }

    /** Writes zero bytes (data, never a zero flag) into {@code [offset, offset + length)}. */
    void writeZeroBytes(long offset, long length) throws IOException {
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
