package io.github.qcowloom.image;

import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A guest write as straight-line code: per cluster, a write in place when the image owns the cluster alone
 * (COPIED); otherwise, holding that guest cluster's lock, a new host cluster receives the old contents (from the
 * old cluster, a compressed cluster, the backing file or zeroes) with the new data laid over them, and the L2
 * entry is switched to it. No sync on this path: {@link MetadataWriter#flush} orders what reaches the disk.
 */
final class WritePath {
    private final ImageGeometry geometry;
    private final ClusterMapper mapper;
    private final ReadPath readPath;
    private final MetadataWriter metadata;
    private final Storage file;
    private final ClusterLocks clusterLocks = new ClusterLocks();

    WritePath(ImageGeometry geometry, ClusterMapper mapper, ReadPath readPath, MetadataWriter metadata,
            Storage file) {
        this.geometry = geometry;
        this.mapper = mapper;
        this.readPath = readPath;
        this.metadata = metadata;
        this.file = file;
    }

    /** The guest-cluster locks of in-flight allocations, which compressed writes take too. */
    ClusterLocks clusterLocks() {
        return clusterLocks;
    }

    /** Writes {@code src} at guest {@code offset}; the caller has checked the range. */
    void write(long offset, ByteBuffer src) throws IOException {
        long clusterSize = geometry.clusterSize();
        while (src.hasRemaining()) {
            long cluster = offset >>> geometry.clusterBits();
            int inCluster = (int) (offset & (clusterSize - 1));
            int n = (int) Math.min(src.remaining(), clusterSize - inCluster);
            writeCluster(cluster, inCluster, src.slice(src.position(), n));
            src.position(src.position() + n);
            offset += n;
        }
    }

    private void writeCluster(long cluster, int inCluster, ByteBuffer part) throws IOException {
        if (writeInPlace(mapper.lookup(cluster), inCluster, part)) {
            return;
        }
        ClusterLocks.Held held = clusterLocks.lock(cluster);
        try {
            // Another writer may have allocated the cluster while this one waited.
            L2Ref ref = mapper.lookup(cluster);
            if (writeInPlace(ref, inCluster, part)) {
                return;
            }
            if (ref.l2Offset() == 0) {
                // QEMU's order: a missing L2 table is allocated before the data cluster, so both land where QEMU
                // would put them.
                metadata.ensureL2(cluster);
            }
            long tagged = metadata.allocateDataCluster();
            long host = tagged & ~MetadataWriter.FRESH;
            metadata.checkDataWrite(host, geometry.clusterSize());
            if ((tagged & MetadataWriter.FRESH) != 0 && readsAsZero(ref)) {
                // A hole around the data already reads as the zeroes the guest saw (QEMU uses write-zeroes here).
                file.write(part.duplicate(), host + inCluster);
            } else {
                ByteBuffer whole = wholeCluster(cluster, inCluster, part);
                file.event(StorageEvent.COW_WRITE);
                file.write(whole, host);
            }
            metadata.link(cluster, host | L2Entry.COPIED);
        } finally {
            clusterLocks.unlock(cluster, held);
        }
    }

    /** Writes in place if the image owns the cluster alone; false if it must be allocated or copied. */
    private boolean writeInPlace(L2Ref ref, int inCluster, ByteBuffer part) throws IOException {
        if (!ownedAlone(ref.entry())) {
            return false;
        }
        long host = L2Entry.hostOffset(ref.entry()) + inCluster;
        metadata.checkDataWrite(host, part.remaining());
        file.write(part.duplicate(), host);
        return true;
    }

    /** A cluster this image owns alone (NORMAL with COPIED) is written in place; any other must be allocated. */
    static boolean ownedAlone(long entry) {
        return L2Entry.type(entry, false, false) == ClusterType.NORMAL && L2Entry.copied(entry);
    }

    /** True if the guest sees zeroes in the whole cluster now (no backing data, no old cluster's bytes). */
    private boolean readsAsZero(L2Ref ref) {
        return switch (L2Entry.type(ref.entry(), false, false)) {
            case ZERO_PLAIN, ZERO_ALLOC -> true;
            case UNALLOCATED -> !metadata.hasBacking();
            case NORMAL, COMPRESSED -> false;
        };
    }

    /** The new cluster's contents: the new data, and around it what the guest saw there before. */
    private ByteBuffer wholeCluster(long cluster, int inCluster, ByteBuffer part) throws IOException {
        int clusterSize = (int) geometry.clusterSize();
        if (part.remaining() == clusterSize) {
            return part.duplicate();
        }
        ByteBuffer whole = ByteBuffer.allocate(clusterSize);
        file.event(StorageEvent.COW_READ);
        readPath.read(cluster << geometry.clusterBits(), whole);
        whole.clear();
        whole.put(inCluster, part.duplicate(), 0, part.remaining());
        return whole;
    }
}
