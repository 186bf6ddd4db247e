package io.github.qcowloom.image;

import io.github.qcowloom.alloc.CompressedAllocator;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.compress.ClusterCodec;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * QEMU's qcow2_co_pwritev_compressed: a write of whole guest clusters (the disk's partial last cluster padded with
 * zeroes), each compressed with the image's codec and stored in host bytes packed by {@link CompressedAllocator};
 * a cluster that does not shrink is written as a normal cluster. Compressed data goes only into clusters without a
 * host offset; with extended L2 the compressed cluster's bitmap becomes 0, whatever zero subclusters it had. Images
 * with an external data file take no compressed writes, as in QEMU. No sync on this path:
 * {@link MetadataWriter#flush} orders what reaches the disk.
 */
final class CompressedWritePath {
    private final ImageGeometry geometry;
    private final MetadataWriter metadata;
    private final WritePath writePath;
    private final Storage file;
    private final ClusterCodec codec;

    CompressedWritePath(ImageGeometry geometry, MetadataWriter metadata, WritePath writePath, Storage file,
            ClusterCodec codec) {
        this.geometry = geometry;
        this.metadata = metadata;
        this.writePath = writePath;
        this.file = file;
        this.codec = codec;
    }

    /**
     * Compresses {@code src}, the whole cluster at guest {@code offset} (or the disk's partial last cluster, which
     * is padded with zeroes first) on a disk of {@code size} bytes. No I/O, no lock: safe on any thread.
     */
    CompressedCluster compress(long offset, ByteBuffer src, long size) throws IOException {
        checkAligned(offset, src.remaining(), size);
        int clusterSize = (int) geometry.clusterSize();
        if (src.remaining() > clusterSize) {
            throw new OutOfRangeException("A compressed cluster is one cluster of " + clusterSize + " bytes, not "
                    + src.remaining());
        }
        ByteBuffer whole = src;
        if (src.remaining() < clusterSize) {
            whole = ByteBuffer.allocate(clusterSize).put(src.duplicate()).clear();
        }
        return new CompressedCluster(offset, geometry.clusterBits(), codec.type(), src.duplicate(),
                codec.compress(whole));
    }

    /** Writes {@code src} at guest {@code offset} cluster by cluster; the caller has checked range and writability. */
    void write(long offset, ByteBuffer src, long size) throws IOException {
        checkAligned(offset, src.remaining(), size);
        int clusterSize = (int) geometry.clusterSize();
        while (src.hasRemaining()) {
            int n = Math.min(src.remaining(), clusterSize);
            write(compress(offset, src.slice(src.position(), n), size));
            src.position(src.position() + n);
            offset += n;
        }
    }

    /** Writes one prepared cluster: packed compressed bytes, or a normal cluster when it did not shrink. */
    void write(CompressedCluster c) throws IOException {
        if (!c.fits(geometry.clusterBits(), codec.type())) {
            throw new IllegalArgumentException("The cluster was compressed for another cluster size or codec");
        }
        refuseDataFile();
        if (!c.shrank()) {
            // As QEMU: the fallback is an ordinary write, whatever the cluster holds now.
            writePath.write(c.guestOffset(), c.data());
            return;
        }
        byte[] bytes = c.compressed();
        long cluster = c.guestOffset() >>> geometry.clusterBits();
        ClusterLocks locks = writePath.clusterLocks();
        // Held from the check that the cluster is unallocated until its entry is set: no other writer can
        // allocate it in between.
        ClusterLocks.Held held = locks.lock(cluster);
        try {
            long host = metadata.allocateCompressed(cluster, bytes.length);
            file.write(ByteBuffer.wrap(bytes), host);
            // The bytes are written before the entry that points to them is set; the refcount increase is
            // already in the cache, so any flush carrying the entry carries (and first syncs) the increase. With
            // extended L2, linkCompressed gives the entry the bitmap 0 that a compressed cluster must have.
            metadata.linkCompressed(new GuestCluster(cluster),
                    CompressedDescriptor.encode(host, bytes.length, geometry.clusterBits()));
        } finally {
            locks.unlock(cluster, held);
        }
    }

    /**
     * Rounds the file's length up to whole sectors, as QEMU's zero-length compressed write (qemu-img convert -c's
     * last request) does, so that the last compressed cluster's last sector lies wholly in the file. Called with
     * the image lock held exclusive: the gap lies in a host cluster that holds compressed data, and only compressed
     * writes, now excluded, ever write into it; zeroes are written rather than the length set, so the file can
     * never shrink.
     */
    void padFileToSector() throws IOException {
        refuseDataFile();
        long length = file.size();
        int gap = (int) (-length & (CompressedDescriptor.SECTOR - 1));
        if (gap != 0) {
            file.write(ByteBuffer.allocate(gap), length);
        }
    }

    /**
     * QEMU's qcow2_co_pwritev_compressed_part answers -ENOTSUP first thing on an image with an external data file
     * (whose clusters sit at their guest offsets: there is nowhere to pack), whatever the data and even for the
     * zero-length write that pads the file; qemu-io prints that errno's text.
     */
    private void refuseDataFile() throws UnsupportedFeatureException {
        if (geometry.hasDataFile()) {
            throw new UnsupportedFeatureException("compressed writes with an external data file",
                    "Operation not supported");
        }
    }

    /** QEMU's -EINVAL cases: the start must be cluster-aligned, and so must the end unless it is the disk's end. */
    private void checkAligned(long offset, long length, long size) throws OutOfRangeException {
        long mask = geometry.clusterSize() - 1;
        if ((offset & mask) != 0 || ((length & mask) != 0 && offset + length != size)) {
            throw new OutOfRangeException(String.format("A compressed write must cover whole clusters (of %d bytes)"
                    + " or end at the disk's end: %d bytes at offset %#x", geometry.clusterSize(), length, offset));
        }
    }
}
