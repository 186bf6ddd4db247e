package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostOffset;
import io.github.qcowloom.alloc.NewCluster;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * A guest write as straight-line code: whole clusters that hold no data, several at once, into one new run of host
 * clusters; otherwise a write in place when the image owns the cluster alone (COPIED) and, with extended L2, every
 * subcluster written to is allocated (with the clusters after it that sit next to it in the file and may be written
 * in place too); otherwise, holding that guest cluster's lock, the data goes into the cluster with the
 * copy-on-write head and tail of its {@link CowRange} (the old contents: from the old cluster, a compressed cluster,
 * the backing file or zeroes) and the L2 entry is switched to it. The cluster is a new host cluster, or with extended L2 the owned one, whose newly filled
 * subclusters are then marked allocated. With an external data file, data goes there, at the guest offset. No
 * sync on this path: {@link MetadataWriter#flush} orders what reaches the disk.
 */
final class WritePath {
    /** The most clusters one write allocates together: 4 MiB at the default cluster size. */
    private static final int MAX_RUN = 64;

    private final ImageGeometry geometry;
    private final ClusterMapper mapper;
    private final ReadPath readPath;
    /** Block status through the chain: whether the copy-on-write head and tail read as zeroes. */
    private final BlockStatusPath statusPath;
    private final MetadataWriter metadata;
    /** Where guest data lives: the image file, or the external data file. */
    private final Storage data;
    /** The data clusters' guest data, through the cipher of an encrypted image. */
    private final GuestData guestData;
    private final ClusterLocks clusterLocks = new ClusterLocks();
    /** False for encrypted data: a fresh cluster's host zeroes decrypt to noise, so its copy-on-write is written. */
    private final boolean hostZeroesReadAsZero;

    WritePath(ImageGeometry geometry, ClusterMapper mapper, ReadPath readPath, BlockStatusPath statusPath,
            MetadataWriter metadata, Storage data, GuestData guestData, boolean hostZeroesReadAsZero) {
        this.hostZeroesReadAsZero = hostZeroesReadAsZero;
        this.geometry = geometry;
        this.mapper = mapper;
        this.readPath = readPath;
        this.statusPath = statusPath;
        this.metadata = metadata;
        this.data = data;
        this.guestData = guestData;
    }

    /** The guest-cluster locks of in-flight allocations, which compressed writes and partial zeroing take too. */
    ClusterLocks clusterLocks() {
        return clusterLocks;
    }

    /**
     * Writes {@code src} at guest {@code offset}; the caller has checked the range. What allocates (new runs of
     * clusters, clusters written one by one) is written as it is met, in guest order, so that the clusters land in
     * the file in QEMU's order; the writes in place (one per run of host-contiguous clusters) then go side by side
     * where the data's file waits for a device ({@link PartTasks}), as QEMU's qcow2_co_pwritev_part hands its parts
     * to a task pool. They take no lock, as a write in place never has, except under an exclusive edit (resize's
     * zeroing holds the metadata lock, which their overlap check may need): there they run on this thread.
     */
    void write(long offset, ByteBuffer src) throws IOException {
        PartTasks tasks = new PartTasks(data.waitsForDevice() && !metadata.heldByCurrentThread());
        long clusterSize = geometry.clusterSize();
        while (src.hasRemaining()) {
            GuestCluster cluster = new GuestCluster(offset >>> geometry.clusterBits());
            int inCluster = (int) (offset & (clusterSize - 1));
            L2Mapping mapping = mapper.lookup(cluster);
            int n = inCluster == 0 && holdsNoData(mapping) ? writeNewRun(cluster, src) << geometry.clusterBits() : 0;
            if (n == 0) {
                n = (int) Math.min(src.remaining(), clusterSize - inCluster);
                if (mapping instanceof L2Mapping.Data owned && inPlace(owned, inCluster, n)) {
                    // With the clusters in a row in the file that may be written in place too: one host write,
                    // without their locks, as for one cluster (see writeInPlace).
                    n = mapper.contiguousRun(owned, cluster, n, src.remaining(),
                            (next, bytes) -> inPlace(next, 0, bytes));
                    ByteBuffer run = src.slice(src.position(), n);
                    long host = owned.cluster().bytes() + inCluster;
                    long guest = offset;
                    tasks.add(() -> writeData(run, host, guest));
                } else {
                    writeCluster(cluster, inCluster, src.slice(src.position(), n));
                }
            }
            src.position(src.position() + n);
            offset += n;
        }
        tasks.runAll();
    }

    /** True if {@code n} bytes from {@code inCluster} of the cluster may be written in place. */
    private boolean inPlace(L2Mapping.Data data, int inCluster, int n) {
        int sc = geometry.subclusterSize();
        return data.writableInPlace(inCluster / sc, (inCluster + n - 1) / sc + 1);
    }

    /**
     * QEMU's handle_alloc for several clusters: when {@code src} begins with whole clusters that hold no data
     * (unallocated, or zero without a cluster), at least two and within one L2 table, they get one contiguous run
     * of new host clusters, written with one host write and then linked cluster by cluster. Holds their guest
     * cluster locks, taken in ascending order (the one holder of several: see MetadataWriter's lock order).
     * Returns the clusters written, or 0: the caller writes cluster by cluster.
     */
    private int writeNewRun(GuestCluster first, ByteBuffer src) throws IOException {
        if (geometry.extendedL2() || geometry.hasDataFile() || metadata.hasReservedClusters()) {
            return 0; // a batch's writes take the clusters reserved for them
        }
        long perTable = 1L << geometry.l2Bits();
        long toTableEnd = perTable - (first.index() & (perTable - 1));
        int max = (int) Math.min(Math.min(MAX_RUN, toTableEnd), src.remaining() >>> geometry.clusterBits());
        if (max < 2) {
            return 0;
        }
        int candidates = clustersWithoutData(first, max);
        if (candidates < 2) {
            return 0;
        }
        ClusterLocks.Held[] held = new ClusterLocks.Held[candidates];
        try {
            for (int i = 0; i < candidates; i++) {
                held[i] = clusterLocks.lock(first.index() + i);
            }
            // Another writer may have allocated some of them while this one waited.
            int run = clustersWithoutData(first, candidates);
            if (run < 2) {
                return 0;
            }
            if (mapper.lookup(first).l2Offset() == 0) {
                metadata.ensureL2(first); // the table before the data, as for one cluster
            }
            List<NewCluster> hosts = metadata.allocateDataRun(run);
            writeData(src.slice(src.position(), run << geometry.clusterBits()), hosts.get(0).at().bytes(),
                    first.offset(geometry.clusterBits()));
            for (int i = 0; i < run; i++) {
                metadata.link(new GuestCluster(first.index() + i), hosts.get(i).at());
            }
            return run;
        } finally {
            for (int i = candidates - 1; i >= 0; i--) {
                if (held[i] != null) {
                    clusterLocks.unlock(first.index() + i, held[i]);
                }
            }
        }
    }

    /**
     * QEMU's preallocate_co, for a resize with a preallocation mode. The resize runs it while it holds the image
     * exclusively, before it writes the new size: no request reaches the range, so no cluster lock is taken. Every
     * cluster of the range that has no host cluster gets one and its L2 entry, as a write of it would, without data:
     * runs of up to {@link #MAX_RUN} clusters within one L2 table, contiguous in the file (with a data file, the
     * clusters at the guest offsets there). Their host space is left sparse, reserved or written with zeroes as
     * {@link HostSpace#prepare} does for {@code mode}, but where it lies in {@code [preparedFrom, preparedTo)}, which
     * the resize has taken already. With extended L2 an entry keeps its bitmap: no subcluster is marked allocated and
     * zeroed ones stay zero, as QEMU leaves them; without, a zero cluster placed by a metadata preallocation keeps
     * its zero flag, as QEMU's (which zeroes the range after placing it) leaves it. Over a backing file the old last
     * cluster, whose head may show it, is left as it is (QEMU copies that head into the new cluster).
     *
     * @param preparedFrom where the host space the resize prepared begins: the end of the image file, or of the data
     *     file (which reads as zeroes past it, grown or not), before the resize
     * @param preparedTo where it ends ({@code preparedFrom} for none)
     */
    void preallocate(long offset, long length, Preallocation mode, long preparedFrom, long preparedTo)
            throws IOException {
        long clusterSize = geometry.clusterSize();
        long from = metadata.hasBacking() ? Bytes.alignUp(offset, clusterSize) : offset & -clusterSize;
        long end = Bytes.alignUp(offset + length, clusterSize) >>> geometry.clusterBits();
        long perTable = 1L << geometry.l2Bits();
        for (long c = from >>> geometry.clusterBits(); c < end; ) {
            GuestCluster first = new GuestCluster(c);
            int max = (int) Math.min(Math.min(MAX_RUN, perTable - (c & (perTable - 1))), end - c);
            int run = clustersWhere(first, max, this::hasNoHostCluster);
            if (run == 0) {
                c++;
                continue;
            }
            if (mapper.lookup(first).l2Offset() == 0) {
                metadata.ensureL2(first);
            }
            List<NewCluster> hosts = new ArrayList<>(run);
            if (geometry.hasDataFile()) {
                for (int i = 0; i < run; i++) {
                    long host = new GuestCluster(c + i).offset(geometry.clusterBits());
                    hosts.add(new NewCluster(new HostOffset(host), host >= preparedFrom));
                }
            } else {
                hosts.addAll(metadata.allocateDataRun(run));
            }
            prepareHosts(first, hosts, mode, preparedFrom, preparedTo);
            for (int i = 0; i < run; i++) {
                GuestCluster cluster = new GuestCluster(c + i);
                if (geometry.extendedL2()) {
                    metadata.linkSubclusters(cluster, hosts.get(i).at(), 0, 0); // bitmap kept
                } else if (mode == Preallocation.METADATA && mapper.lookup(cluster) instanceof L2Mapping.Zero) {
                    // QEMU places the cluster first and zeroes the range after: a zero cluster with a host one
                    metadata.linkZero(cluster, hosts.get(i).at());
                } else {
                    metadata.link(cluster, hosts.get(i).at());
                }
            }
            c += run;
            metadata.writeBackWhenCacheFull();
        }
    }

    /** A cluster preallocation places: one with no host cluster (with extended L2, whatever its bitmap says). */
    private boolean hasNoHostCluster(L2Mapping mapping) {
        return geometry.extendedL2() ? mapping instanceof L2Mapping.Unallocated : holdsNoData(mapping);
    }

    /**
     * The preallocated clusters' host space, but for what lies in {@code [preparedFrom, preparedTo)}: one call per run
     * of clusters in a row in the file that are alike (fresh or not, prepared or not). {@code hosts} are those of the
     * guest clusters from {@code firstGuest} on.
     */
    private void prepareHosts(GuestCluster firstGuest, List<NewCluster> hosts, Preallocation mode, long preparedFrom,
            long preparedTo) throws IOException {
        long size = geometry.clusterSize();
        for (int i = 0; i < hosts.size(); ) {
            NewCluster first = hosts.get(i);
            boolean prepared = within(first, preparedFrom, preparedTo);
            int j = i + 1;
            while (j < hosts.size() && hosts.get(j).fresh() == first.fresh()
                    && within(hosts.get(j), preparedFrom, preparedTo) == prepared
                    && hosts.get(j).at().bytes() == first.at().bytes() + (j - i) * size) {
                j++;
            }
            if (!geometry.hasDataFile()) {
                metadata.checkDataWrite(first.at().bytes(), (j - i) * size);
            }
            if (!prepared) {
                long host = first.at().bytes();
                long guest = new GuestCluster(firstGuest.index() + i).offset(geometry.clusterBits());
                HostSpace.prepare(guestData.at(host, guest), mode, host, (j - i) * size, first.fresh());
            }
            i = j;
        }
    }

    private boolean within(NewCluster cluster, long from, long to) {
        long at = cluster.at().bytes();
        return at >= from && at + geometry.clusterSize() <= to;
    }

    /** How many clusters from {@code first} on, at most {@code max}, pass {@code test}. */
    private int clustersWhere(GuestCluster first, int max, Predicate<L2Mapping> test) throws IOException {
        int n = 0;
        while (n < max && test.test(mapper.lookup(new GuestCluster(first.index() + n)))) {
            n++;
        }
        return n;
    }

    /** How many clusters from {@code first} on, at most {@code max}, hold no data: unallocated, or zero without one. */
    private int clustersWithoutData(GuestCluster first, int max) throws IOException {
        return clustersWhere(first, max, WritePath::holdsNoData);
    }

    private static boolean holdsNoData(L2Mapping mapping) {
        return mapping instanceof L2Mapping.Unallocated
                || mapping instanceof L2Mapping.Zero zero && zero.preallocated() == null;
    }

    /** One cluster's part of a write that could not be made in place as looked up without its lock. */
    private void writeCluster(GuestCluster cluster, int inCluster, ByteBuffer part) throws IOException {
        ClusterLocks.Held held = clusterLocks.lock(cluster.index());
        try {
            while (true) {
                // Another writer may have allocated the cluster (or its subclusters) while this one waited.
                L2Mapping mapping = mapper.lookup(cluster);
                if (writeInPlace(mapping, cluster, inCluster, part)) {
                    return;
                }
                if (!(mapping instanceof L2Mapping.Data owned && owned.copied())) {
                    writeNewCluster(mapping, cluster, inCluster, part);
                    return;
                }
                if (fillSubclusters(owned, cluster, inCluster, part)) {
                    return;
                }
                // A discard or write-zeroes replaced the entry meanwhile: look again.
            }
        } finally {
            clusterLocks.unlock(cluster.index(), held);
        }
    }

    /**
     * Writes in place if the image owns the cluster alone and, with extended L2, every subcluster written to is
     * allocated; false if the cluster must be allocated or subclusters filled.
     */
    private boolean writeInPlace(L2Mapping mapping, GuestCluster cluster, int inCluster, ByteBuffer part)
            throws IOException {
        if (!(mapping instanceof L2Mapping.Data data && inPlace(data, inCluster, part.remaining()))) {
            return false;
        }
        writeData(part.duplicate(), data.cluster().bytes() + inCluster, guestOffset(cluster, inCluster));
        return true;
    }

    /**
     * Extended L2, QEMU's handle_copied with keep_old: the data and the copy-on-write of the unallocated or zero
     * subclusters it touches go into the owned cluster, which then has them marked allocated. False if the entry
     * changed before that (nothing was marked; the caller retries).
     */
    private boolean fillSubclusters(L2Mapping.Data owned, GuestCluster cluster, int inCluster, ByteBuffer part)
            throws IOException {
        CowRange range = CowRange.forOwnedCluster(geometry, owned, cluster, inCluster, inCluster + part.remaining());
        writeData(withCow(cluster, range, part), owned.cluster().bytes() + range.from(),
                guestOffset(cluster, range.from()));
        // The subclusters' data is written (durable before the bitmap at the next flush), then they are marked.
        return metadata.markAllocated(cluster, owned, range.firstSubcluster(geometry), range.endSubcluster(geometry));
    }

    /**
     * QEMU's handle_alloc: a new host cluster (with a data file, the one at the guest offset there) receives the
     * data and its copy-on-write head and tail, then the L2 entry points to it.
     */
    private void writeNewCluster(L2Mapping old, GuestCluster cluster, int inCluster, ByteBuffer part)
            throws IOException {
        CowRange range = CowRange.forNewCluster(geometry, old, cluster, inCluster, inCluster + part.remaining());
        if (old.l2Offset() == 0) {
            // QEMU's order: a missing L2 table is allocated before the data cluster, so both land where QEMU would
            // put them.
            metadata.ensureL2(cluster);
        }
        NewCluster fresh = newHostCluster(cluster);
        long host = fresh.at().bytes();
        if (fresh.fresh() && hostZeroesReadAsZero && cowReadsAsZero(cluster, range)) {
            // A hole around the data already reads as the zeroes the guest saw (QEMU uses write-zeroes here).
            writeData(part.duplicate(), host + inCluster, guestOffset(cluster, inCluster));
        } else {
            writeData(withCow(cluster, range, part), host + range.from(), guestOffset(cluster, range.from()));
        }
        // Data first, entry after: the flush writes the entry only once the data is durable.
        if (geometry.extendedL2()) {
            metadata.linkSubclusters(cluster, fresh.at(), range.firstSubcluster(geometry),
                    range.endSubcluster(geometry));
        } else {
            metadata.link(cluster, fresh.at());
        }
    }

    /**
     * A host cluster for a guest cluster's new data: from the allocator; with an external data file, the cluster at
     * the guest offset there (QEMU's do_alloc_cluster_offset), which has no refcount and is fresh when it lies past
     * the end of that file.
     */
    private NewCluster newHostCluster(GuestCluster cluster) throws IOException {
        if (!geometry.hasDataFile()) {
            return metadata.allocateDataCluster();
        }
        long host = cluster.offset(geometry.clusterBits());
        return new NewCluster(new HostOffset(host), host >= data.size());
    }

    /**
     * Writes guest data whose first byte lies at {@code guest} in the guest; into the image file only where no
     * metadata lies (a data file holds no metadata).
     */
    private void writeData(ByteBuffer src, long host, long guest) throws IOException {
        if (!geometry.hasDataFile()) {
            metadata.checkDataWrite(host, src.remaining());
        }
        guestData.at(host, guest).write(src, host);
    }

    private long guestOffset(GuestCluster cluster, int inCluster) {
        return cluster.offset(geometry.clusterBits()) + inCluster;
    }

    /**
     * True if the guest sees zeroes in the copy-on-write head and tail now, as the image's block status says through
     * its backing chain (QEMU's is_zero_cow): zero subclusters, and unallocated ones where there is no backing file or
     * it reads as zeroes there (its backing file is read-only, so the answer holds until the write).
     */
    private boolean cowReadsAsZero(GuestCluster cluster, CowRange range) throws IOException {
        long guest = guestOffset(cluster, 0);
        return statusPath.readsAsZero(guest + range.from(), guest + range.start())
                && statusPath.readsAsZero(guest + range.end(), guest + range.to());
    }

    /** The bytes of {@code range}: the new data, and around it what the guest saw there before. */
    private ByteBuffer withCow(GuestCluster cluster, CowRange range, ByteBuffer part) throws IOException {
        if (!range.hasCow()) {
            return part.duplicate();
        }
        ByteBuffer bytes = ByteBuffer.allocate(range.to() - range.from());
        long guest = cluster.offset(geometry.clusterBits()) + range.from();
        data.event(StorageEvent.COW_READ);
        readPath.read(guest, bytes.slice(0, range.start() - range.from()));
        readPath.read(guest + range.end() - range.from(), bytes.slice(range.end() - range.from(),
                range.to() - range.end()));
        bytes.put(range.start() - range.from(), part.duplicate(), 0, part.remaining());
        data.event(StorageEvent.COW_WRITE);
        return bytes;
    }
}
