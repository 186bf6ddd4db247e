package io.github.qcowloom.image;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.cache.Slice;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.SubclusterType;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.StampedLock;

/** Finds the L2 entry of a guest cluster: L1 table in memory, then the L2 slice through the cache. */
final class ClusterMapper {
    private final ImageGeometry geometry;
    private final TableCache l2Cache;
    /**
     * The active L1 table; entries change under the metadata lock, reads need no lock. The whole table is
     * replaced only while the image lock is held exclusive (L1 growth, snapshot apply).
     */
    private volatile AtomicLongArray l1;
    /**
     * An extended L2 entry is two words, and a reader must never pair one from before a change with the other from
     * after it: an entry without a cluster but with allocated subclusters is corrupt, for one. Writers, who hold
     * the metadata lock, store both under this lock's write mode; {@link #lookup} reads optimistically and reads
     * again under the read mode when a write came between.
     */
    private final StampedLock twoWordEntries = new StampedLock();

    ClusterMapper(ImageGeometry geometry, TableCache l2Cache, long[] l1) {
        this.geometry = geometry;
        this.l2Cache = l2Cache;
        this.l1 = new AtomicLongArray(l1);
    }

    AtomicLongArray l1() {
        return l1;
    }

    /** Installs a grown L1 table: the first {@code entries} big-endian entries of {@code table}. */
    void replaceL1(byte[] table, int entries) {
        long[] l = new long[entries];
        for (int i = 0; i < entries; i++) {
            l[i] = io.github.qcowloom.format.Bytes.getLong(table, i * 8);
        }
        l1 = new AtomicLongArray(l);
    }

    TableCache l2Cache() {
        return l2Cache;
    }

    ImageGeometry geometry() {
        return geometry;
    }

    /** The L2 entry for guest cluster {@code cluster}; {@link L2Ref#UNALLOCATED} if its L2 table is absent. */
    L2Ref lookup(long cluster) throws IOException {
        long l1Index = cluster >>> geometry.l2Bits();
        if (l1Index >= l1.length()) {
            return L2Ref.UNALLOCATED;
        }
        long l2Offset = L1Entry.checkedL2Offset(l1.get((int) l1Index), l1Index, geometry.clusterSize());
        if (l2Offset == 0) {
            return L2Ref.UNALLOCATED;
        }
        Slice slice = l2Cache.get(sliceOffset(l2Offset, cluster));
        int at = entryInSlice(cluster);
        if (!geometry.extendedL2()) {
            return new L2Ref(l2Offset, slice.getLong(at), 0);
        }
        long stamp = twoWordEntries.tryOptimisticRead();
        long entry = slice.getLong(at);
        long bitmap = slice.getLong(at + 8);
        if (!twoWordEntries.validate(stamp)) {
            stamp = twoWordEntries.readLock();
            try {
                entry = slice.getLong(at);
                bitmap = slice.getLong(at + 8);
            } finally {
                twoWordEntries.unlockRead(stamp);
            }
        }
        return new L2Ref(l2Offset, entry, bitmap);
    }

    /**
     * Stores {@code cluster}'s entry (and with extended L2 its bitmap) in {@code slice}, the slice that holds it;
     * the caller holds the metadata lock. {@link #lookup} sees both words old or both new.
     */
    void setWords(Slice slice, long cluster, L2Words words) {
        int at = entryInSlice(cluster);
        if (!geometry.extendedL2()) {
            slice.setLong(at, words.entry());
            return;
        }
        long stamp = twoWordEntries.writeLock();
        try {
            slice.setLong(at, words.entry());
            slice.setLong(at + 8, words.bitmap());
        } finally {
            twoWordEntries.unlockWrite(stamp);
        }
    }

    /** The words of {@code cluster}'s entry in {@code slice}, read by a writer holding the metadata lock. */
    L2Words words(Slice slice, long cluster) {
        int at = entryInSlice(cluster);
        return new L2Words(slice.getLong(at), geometry.extendedL2() ? slice.getLong(at + 8) : 0);
    }

    /**
     * The type of subcluster {@code sc} of the cluster whose entry is {@code ref}; with standard L2, where a cluster is
     * its only subcluster, the cluster's type.
     */
    SubclusterType subclusterType(L2Ref ref, int sc) {
        return geometry.extendedL2()
                ? L2Entry.subclusterType(ref.entry(), ref.bitmap(), sc, geometry.hasDataFile())
                : L2Entry.asSubcluster(L2Entry.type(ref.entry(), false, geometry.hasDataFile()));
    }

    /** Host offset of the L2 slice holding {@code cluster}'s entry in the table at {@code l2Offset}. */
    long sliceOffset(long l2Offset, long cluster) {
        return l2Offset + (byteInTable(cluster) & -l2Cache.sliceSize());
    }

    /** Byte offset of {@code cluster}'s entry within its L2 slice. */
    int entryInSlice(long cluster) {
        return (int) (byteInTable(cluster) & (l2Cache.sliceSize() - 1));
    }

    private long byteInTable(long cluster) {
        return (cluster & (geometry.l2Entries() - 1)) * geometry.l2EntrySize();
    }
}
