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
            long tagged = metadata.allocateDataCluster();
            long host = tagged & ~MetadataWriter.FRESH;
            metadata.checkDataWrite(host, geometry.clusterSize());
            if ((tagged & MetadataWriter.FRESH) != 0 && readsAsZero(ref)) {
                // A hole around the data already reads as the zeroes the guest saw (QEMU uses write-zeroes here).
                file.write(part.duplicate(), host + inCluster);
                extendOverCluster(host, inCluster + part.remaining());
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

    /**
     * Makes the file reach the end of the fresh cluster at {@code host}, whose data ends at {@code dataEnd}, by
     * writing zeroes over its last block (the space between stays a hole). This write goes in the same epoch as
     * the data, before the L2 entry can reach the disk, so a durable entry never points past the file's durable
     * end: a later write into the cluster is then in place. Appended space a crash finds unwritten may hold
     * garbage on file systems that persist a file's size before its data (crashkit's torn appends).
     */
    private void extendOverCluster(long host, long dataEnd) throws IOException {
        long clusterSize = geometry.clusterSize();
        if (dataEnd < clusterSize) {
            long from = Math.max(dataEnd, clusterSize - Math.max(512, file.alignment()));
            file.writeZeroes(host + from, clusterSize - from);
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
