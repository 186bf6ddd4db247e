package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostOffset;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.cache.Slice;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.StampedLock;

/** Finds the L2 entry of a guest cluster: L1 table in memory, then the L2 slice through the cache. */
final class ClusterMapper {
    /** What a guest cluster without an L2 table maps to. */
    private static final L2Mapping NO_TABLE = new L2Mapping.Unallocated(0, new L2Words(0, 0));

    private final ImageGeometry geometry;
    private final TableCache l2Cache;
    /**
     * The active L1 table; entries change under the metadata lock, reads need no lock. The whole table is
     * replaced only while the image lock is held exclusive (L1 growth, snapshot apply), or, read-only, by a view of
     * a snapshot.
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

    /** Installs another L1 table (a read-only image's view of a snapshot, {@link Qcow2Image#viewSnapshot}). */
    void replaceL1(long[] entries) {
        l1 = new AtomicLongArray(entries);
    }

    /** Installs a grown L1 table: the first {@code entries} big-endian entries of {@code table}. */
    void replaceL1(byte[] table, int entries) {
        l1 = new AtomicLongArray(L1Entry.decodeTable(table, entries));
    }

    TableCache l2Cache() {
        return l2Cache;
    }

    ImageGeometry geometry() {
        return geometry;
    }

    /** Whether a data cluster may join a run, given the bytes of the request that fall in it. */
    @FunctionalInterface
    interface RunMember {
        boolean accepts(L2Mapping.Data data, int bytes);
    }

    /**
     * The bytes from a request's position in data cluster {@code cluster} (of which {@code n} lie in it) to the end
     * of the run of following data clusters that sit right after it in the file and that {@code member} accepts, at
     * most {@code remaining}: one host request, as QEMU reads (qcow2_co_preadv_part) and writes in place
     * (handle_copied) host-contiguous clusters together. Each cluster of the run passed the checks of its lookup.
     */
    int contiguousRun(L2Mapping.Data first, GuestCluster cluster, int n, int remaining, RunMember member)
            throws IOException {
        long clusterSize = geometry.clusterSize();
        HostOffset nextHost = first.cluster().plus(clusterSize);
        int run = n;
        for (GuestCluster next = cluster.next(); run < remaining; next = next.next(), nextHost = nextHost.plus(
                clusterSize)) {
            int bytes = (int) Math.min(clusterSize, remaining - run);
            if (!(lookup(next) instanceof L2Mapping.Data data) || !data.cluster().equals(nextHost)
                    || !member.accepts(data, bytes)) {
                break;
            }
            run += bytes;
        }
        return run;
    }

    /**
     * What guest {@code cluster}'s L2 entry maps it to, checked (see {@link L2Mapping}); unallocated with L2 offset 0
     * if its L2 table is absent.
     */
    L2Mapping lookup(GuestCluster cluster) throws IOException {
        long index = cluster.index();
        long l1Index = index >>> geometry.l2Bits();
        if (l1Index >= l1.length()) {
            return NO_TABLE;
        }
        long l2Offset = L1Entry.checkedL2Offset(l1.get((int) l1Index), l1Index, geometry.clusterSize());
        if (l2Offset == 0) {
            return NO_TABLE;
        }
        Slice slice = l2Cache.get(sliceOffset(l2Offset, index));
        int at = entryInSlice(index);
        if (!geometry.extendedL2()) {
            return decode(l2Offset, new L2Words(slice.getLong(at), 0), cluster);
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
        return decode(l2Offset, new L2Words(entry, bitmap), cluster);
    }

    /** Decodes an entry of the table at {@code l2Offset} for guest {@code cluster}, with QEMU's checks. */
    private L2Mapping decode(long l2Offset, L2Words words, GuestCluster cluster) throws MetadataCorruptionException {
        long entry = words.entry();
        long bitmap = words.bitmap();
        boolean extended = geometry.extendedL2();
        return switch (L2Entry.type(entry, extended, geometry.hasDataFile())) {
            case COMPRESSED -> {
                CompressedDescriptor d = CompressedDescriptor.decode(entry, geometry.clusterBits());
                yield new L2Mapping.Compressed(l2Offset, words, new HostOffset(d.hostOffset()), d.length());
            }
            case UNALLOCATED -> extended && (bitmap & L2Entry.BITMAP_ALLOC_MASK) != 0
                    ? new L2Mapping.Invalid(l2Offset, words)
                    : new L2Mapping.Unallocated(l2Offset, words);
            case ZERO_PLAIN, ZERO_ALLOC -> {
                if (geometry.version() < 3) {
                    throw new MetadataCorruptionException(String.format(
                            "Zero cluster entry found in pre-v3 image (L2 offset: %#x, L2 index: %#x)", l2Offset,
                            geometry.l2Index(cluster)));
                }
                long host = L2Entry.hostOffset(entry);
                yield new L2Mapping.Zero(l2Offset, words, host == 0 ? null : checkedHost(host, l2Offset, cluster));
            }
            case NORMAL -> extended && ((bitmap >>> 32) & bitmap) != 0
                    ? new L2Mapping.Invalid(l2Offset, words)
                    : new L2Mapping.Data(l2Offset, words, checkedHost(L2Entry.hostOffset(entry), l2Offset, cluster),
                            L2Entry.copied(entry), extended);
        };
    }

    /** QEMU's words for an L2 entry whose host offset is not on a cluster boundary (C's %#x: 0 without 0x). */
    static MetadataCorruptionException unaligned(long host, long l2Offset, long l2Index) {
        return new MetadataCorruptionException("Cluster allocation offset " + Bytes.cHex(host) + " unaligned (L2"
                + " offset: " + Bytes.cHex(l2Offset) + ", L2 index: " + Bytes.cHex(l2Index) + ")");
    }

    /**
     * A host cluster's offset, checked as QEMU's qcow2_get_host_offset and handle_copied check it before use: aligned,
     * and with an external data file, where a guest cluster lives at its own offset, that offset.
     */
    private HostOffset checkedHost(long host, long l2Offset, GuestCluster cluster) throws MetadataCorruptionException {
        if ((host & (geometry.clusterSize() - 1)) != 0) {
            throw unaligned(host, l2Offset, geometry.l2Index(cluster));
        }
        long guest = cluster.offset(geometry.clusterBits());
        if (geometry.hasDataFile() && host != guest) {
            throw new MetadataCorruptionException(String.format(
                    "External data file host cluster offset %#x does not match guest cluster offset: %#x", host,
                    guest));
        }
        return new HostOffset(host);
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
