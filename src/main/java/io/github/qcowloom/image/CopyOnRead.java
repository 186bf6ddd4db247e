package io.github.qcowloom.image;

import io.github.qcowloom.format.SubclusterType;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * QEMU's copy-on-read prefetch (bdrv_co_do_copy_on_readv with BDRV_REQ_PREFETCH), which qemu-nbd runs for
 * NBD_CMD_CACHE: every cluster of the range that this image does not hold (its L2 entry unallocated) gets what the
 * guest reads there now, from the backing chain or as zeroes without one: where that is all zeroes, a zero write
 * without unmapping, as QEMU makes for a zero buffer (v3: zero flags; v2: a data cluster of zeroes over a backing
 * file, none without one), a data cluster otherwise. The guest reads the same bytes before and after. QEMU decides
 * zeroes or data for a whole run of such clusters at once (a run of backing data with a zero cluster in it is copied
 * as data throughout); this decides cluster by cluster, which reads the same and leaves the zero clusters sparse.
 * With extended L2, a cluster is copied only while it has no host cluster and none of its subclusters is zero (QEMU
 * also copies the unallocated subclusters of a cluster it holds, such as a preallocated one).
 *
 * <p>Lock discipline: a cluster is copied holding its guest cluster's {@link ClusterLocks} entry from the test that
 * it is still unallocated, through the read of the chain, to its L2 update (the write and zero paths take it again:
 * it is reentrant). Every write, discard or zero write that allocates a cluster or changes its entry holds that lock
 * too, so none lands between the read and the update and is then undone by the stale copy (QEMU makes the request
 * serialising for the same reason). Writes in place take no lock, but reach only clusters that are allocated, which
 * this never touches. One cluster at a time, so the lock order of writes holds.
 */
final class CopyOnRead {
    private final ImageGeometry geometry;
    private final ClusterMapper mapper;
    private final ReadPath readPath;
    private final WritePath writePath;
    private final DiscardPath discardPath;

    CopyOnRead(ImageGeometry geometry, ClusterMapper mapper, ReadPath readPath, WritePath writePath,
            DiscardPath discardPath) {
        this.geometry = geometry;
        this.mapper = mapper;
        this.readPath = readPath;
        this.writePath = writePath;
        this.discardPath = discardPath;
    }

    /**
     * Copies into the image the clusters of {@code [offset, offset + length)} (whole clusters: the range is widened
     * to them, as QEMU rounds it) that it does not hold; {@code size} is the disk's. Holds one cluster's bytes.
     */
    void prefetch(long offset, long length, long size) throws IOException {
        if (length == 0) {
            return;
        }
        int bits = geometry.clusterBits();
        long clusterSize = geometry.clusterSize();
        long end = Math.min(size, offset + length);
        ByteBuffer buffer = null;
        for (long c = offset >>> bits; c << bits < end; c++) {
            GuestCluster cluster = new GuestCluster(c);
            if (!ownsNoSubcluster(mapper.lookup(cluster))) {
                continue; // looked up without the lock first: most clusters of a written disk are held
            }
            if (buffer == null) {
                buffer = ByteBuffer.allocate((int) clusterSize);
            }
            long from = c << bits;
            int n = (int) Math.min(clusterSize, size - from);
            copy(cluster, from, buffer.clear().limit(n), size);
        }
    }

    /** Copies one cluster under its lock if it is still unallocated. */
    private void copy(GuestCluster cluster, long from, ByteBuffer buffer, long size) throws IOException {
        ClusterLocks locks = writePath.clusterLocks();
        ClusterLocks.Held held = locks.lock(cluster.index());
        try {
            if (!ownsNoSubcluster(mapper.lookup(cluster))) {
                return; // a write, discard or zero write reached it meanwhile
            }
            readPath.read(from, buffer);
            buffer.flip();
            if (ZeroData.isZero(buffer)) {
                discardPath.writeZeroes(from, buffer.remaining(), false, size);
            } else {
                writePath.write(from, buffer);
            }
        } finally {
            locks.unlock(cluster.index(), held);
        }
    }

    /** True if no subcluster of the cluster is held by this image: no host cluster, no zero flag or bit. */
    private boolean ownsNoSubcluster(L2Mapping mapping) {
        if (!(mapping instanceof L2Mapping.Unallocated)) {
            return false;
        }
        int subclusters = geometry.extendedL2() ? 32 : 1;
        for (int sc = 0; sc < subclusters; sc++) {
            if (mapping.subcluster(sc) != SubclusterType.UNALLOCATED_PLAIN) {
                return false;
            }
        }
        return true;
    }
}
