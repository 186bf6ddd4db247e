package io.github.qcowloom.image;

import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.format.L1Entry;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.function.LongSupplier;

/**
 * QEMU's qcow2_check_metadata_overlap in its default "cached" mode: before data or a new table is written to a
 * host range, that range (rounded to clusters) must not touch the header, the active L1 table, the refcount table,
 * the snapshot table or an inactive L1 table, the bitmap directory, an active L2 table or a refcount block. A hit
 * means the refcounts handed out a cluster in use: the image is corrupt, and writing would destroy metadata. A table
 * write-back is checked too, its own kind aside ({@link Exempt}), as QEMU's cache flush checks it.
 *
 * <p>Lock discipline: takes no lock. Data and table write-backs are checked outside the metadata lock, so it reads
 * only published state: the volatile fields here, the L1 table's atomic array, the reftable's extent and the
 * refblocks' concurrent set.
 */
final class OverlapCheck {
    private final ClusterMapper mapper;
    private final RefcountTable refcounts;
    /** Where the active L1 table lives now (it moves when it grows). */
    private final LongSupplier l1Offset;
    /** The snapshot table and snapshot L1 tables, which no write may touch; replaced when the table changes. */
    private volatile SnapshotAreas snapshotAreas = SnapshotAreas.NONE;
    /** The persistent bitmaps' directory, which stays live under a read-write open (PersistentBitmaps); 0 if none. */
    private volatile long bitmapDirectoryOffset;
    private volatile long bitmapDirectoryBytes;

    OverlapCheck(ClusterMapper mapper, RefcountTable refcounts, LongSupplier l1Offset) {
        this.mapper = mapper;
        this.refcounts = refcounts;
        this.l1Offset = l1Offset;
    }

    void snapshotAreas(SnapshotAreas areas) {
        snapshotAreas = areas;
    }

    /** The bitmap directory's place, set at open and where a table edit moves it; 0 bytes for none. */
    void bitmapDirectory(long offset, long bytes) {
        bitmapDirectoryBytes = bytes;
        bitmapDirectoryOffset = offset;
    }

    /** What a write of a table of that kind may touch, its own kind (QEMU's ign argument). */
    enum Exempt {
        NONE, ACTIVE_L2, REFCOUNT_BLOCK
    }

    /** Throws if {@code [offset, offset + length)} overlaps metadata; {@code what} names the write for the message. */
    void check(long offset, long length, String what) throws MetadataCorruptionException {
        check(offset, length, what, Exempt.NONE);
    }

    /** {@link #check(long, long, String)}, for a write of a table of the kind {@code exempt} (or NONE). */
    void check(long offset, long length, String what, Exempt exempt) throws MetadataCorruptionException {
        int bits = mapper.geometry().clusterBits();
        long first = offset >>> bits;
        long last = (offset + Math.max(1, length) - 1) >>> bits;
        if (first == 0) {
            fail(what, offset, "the image header");
        }
        AtomicLongArray l1 = mapper.l1();
        if (overlaps(first, last, l1Offset.getAsLong() >>> bits, l1.length() * 8L, bits)) {
            fail(what, offset, "the active L1 table");
        }
        RefcountTable.Extent reftable = refcounts.extent(); // one read: the check may run without the metadata lock
        if (overlaps(first, last, reftable.offset() >>> bits, (long) reftable.clusters() << bits, bits)) {
            fail(what, offset, "the refcount table");
        }
        SnapshotAreas snapshots = snapshotAreas;
        if (overlaps(first, last, snapshots.tableOffset() >>> bits, snapshots.tableBytes(), bits)) {
            fail(what, offset, "the snapshot table");
        }
        if (overlaps(first, last, bitmapDirectoryOffset >>> bits, bitmapDirectoryBytes, bits)) {
            fail(what, offset, "the bitmap directory");
        }
        for (int i = 0; i < snapshots.l1Offsets().length; i++) {
            if (overlaps(first, last, snapshots.l1Offsets()[i] >>> bits, snapshots.l1Bytes()[i], bits)) {
                fail(what, offset, "an inactive L1 table");
            }
        }
        for (int i = 0; i < l1.length() && exempt != Exempt.ACTIVE_L2; i++) {
            long l2 = L1Entry.l2Offset(l1.get(i)) >>> bits;
            if (l2 != 0 && l2 >= first && l2 <= last) {
                fail(what, offset, "an active L2 table");
            }
        }
        for (long c = first; c <= last && exempt != Exempt.REFCOUNT_BLOCK; c++) {
            if (refcounts.isRefblock(c)) {
                fail(what, offset, "a refcount block");
            }
        }
    }

    private static boolean overlaps(long first, long last, long tableCluster, long tableBytes, int bits) {
        if (tableCluster == 0 || tableBytes == 0) {
            return false;
        }
        long tableLast = tableCluster + ((tableBytes - 1) >>> bits);
        return first <= tableLast && tableCluster <= last;
    }

    private static void fail(String what, long offset, String metadata) throws MetadataCorruptionException {
        throw new MetadataCorruptionException(String.format(
                "Preventing invalid write on metadata (overlaps with %s): %s at host offset %#x", metadata, what,
                offset));
    }
}
