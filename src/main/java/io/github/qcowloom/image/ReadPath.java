package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.compress.ClusterCodec;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.SubclusterType;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.ArrayBlockingQueue;

/**
 * A guest read as straight-line code: per cluster, L1 then L2 (a cache miss yields the thread there), then the
 * data from the image file, the data file, the backing file, a decompressed cluster, or zeroes.
 */
final class ReadPath {
    private final ImageGeometry geometry;
    private final ClusterMapper mapper;
    private final Storage imageFile;
    /** Where data clusters live: the image file, or the external data file (null if not opened). */
    private final Storage dataFile;
    /** The backing image, or null when there is none or it was not opened. */
    private final BlockDevice backing;
    private final boolean hasBacking;
    private final ClusterCodec codec;
    /** Buffers for compressed clusters, kept between reads (see {@link Scratch}). */
    private final ArrayBlockingQueue<ByteBuffer> scratchPool = new ArrayBlockingQueue<>(16);

    ReadPath(ImageGeometry geometry, ClusterMapper mapper, Storage imageFile, Storage dataFile, BlockDevice backing,
            boolean hasBacking, ClusterCodec codec) {
        this.geometry = geometry;
        this.mapper = mapper;
        this.imageFile = imageFile;
        this.dataFile = dataFile;
        this.backing = backing;
        this.hasBacking = hasBacking;
        this.codec = codec;
    }

    /** Fills {@code dst} with guest data from {@code offset}; the caller has checked the range. */
    void read(long offset, ByteBuffer dst) throws IOException {
        Scratch scratch = new Scratch(scratchPool);
        try {
            readRange(offset, dst, scratch);
        } finally {
            scratch.release();
        }
    }

    private void readRange(long offset, ByteBuffer dst, Scratch scratch) throws IOException {
        long clusterSize = geometry.clusterSize();
        while (dst.hasRemaining()) {
            long cluster = offset >>> geometry.clusterBits();
            int inCluster = (int) (offset & (clusterSize - 1));
            int n = (int) Math.min(dst.remaining(), clusterSize - inCluster);
            L2Ref ref = mapper.lookup(cluster);
            if (geometry.extendedL2()) {
                readSubclusters(ref, offset, inCluster, n, dst, scratch);
            } else {
                SubclusterType type = L2Entry.asSubcluster(L2Entry.type(ref.entry(), false, geometry.hasDataFile()));
                if (type == SubclusterType.NORMAL && n < dst.remaining()) {
                    n = contiguousRun(ref, cluster, n, dst.remaining());
                }
                readPart(type, ref, offset, inCluster, n, dst, scratch);
            }
            offset += n;
        }
    }

    /**
     * The bytes from the request's position in data cluster {@code cluster} (of which {@code n} lie in it) to the
     * end of the run of following data clusters that sit right after it in the file, at most {@code remaining}: read
     * with one system call, as QEMU's qcow2_co_preadv_part reads host-contiguous clusters together. Each cluster of
     * the run passes the checks its own read would have made. Safe under the shared image lock the read holds: no
     * cluster it maps is freed before the request ends (deferred frees wait for the exclusive side).
     */
    private int contiguousRun(L2Ref first, long cluster, int n, int remaining) throws IOException {
        long clusterSize = geometry.clusterSize();
        long nextHost = L2Entry.hostOffset(first.entry()) + clusterSize;
        int run = n;
        for (long next = cluster + 1; run < remaining; next++, nextHost += clusterSize) {
            L2Ref ref = mapper.lookup(next);
            if (L2Entry.type(ref.entry(), false, geometry.hasDataFile()) != ClusterType.NORMAL
                    || L2Entry.hostOffset(ref.entry()) != nextHost) {
                break;
            }
            validateHostOffset(SubclusterType.NORMAL, ref, next << geometry.clusterBits());
            run += (int) Math.min(clusterSize, remaining - run);
        }
        return run;
    }

    /** Splits a cluster's part into runs of subclusters of one type. */
    private void readSubclusters(L2Ref ref, long offset, int inCluster, int n, ByteBuffer dst, Scratch scratch)
            throws IOException {
        int scSize = geometry.subclusterSize();
        int end = inCluster + n;
        int pos = inCluster;
        while (pos < end) {
            int sc = pos / scSize;
            SubclusterType type = L2Entry.subclusterType(ref.entry(), ref.bitmap(), sc, geometry.hasDataFile());
            int runEnd = Math.min(end, (sc + 1) * scSize);
            while (runEnd < end && L2Entry.subclusterType(ref.entry(), ref.bitmap(), runEnd / scSize,
                    geometry.hasDataFile()) == type) {
                runEnd = Math.min(end, runEnd + scSize);
            }
            readPart(type, ref, offset + (pos - inCluster), pos, runEnd - pos, dst, scratch);
            pos = runEnd;
        }
    }

    private void readPart(SubclusterType type, L2Ref ref, long guestOffset, int inCluster, int n, ByteBuffer dst,
            Scratch scratch) throws IOException {
        validateHostOffset(type, ref, guestOffset);
        ByteBuffer part = dst.slice(dst.position(), n);
        switch (type) {
            case NORMAL -> readData(ref, inCluster, part);
            case ZERO_PLAIN, ZERO_ALLOC -> zero(part);
            case UNALLOCATED_PLAIN, UNALLOCATED_ALLOC -> readBacking(guestOffset, part);
            case COMPRESSED -> readCompressed(ref, inCluster, part, scratch);
            case INVALID -> throw new MetadataCorruptionException(String.format(
                    "Invalid cluster entry %#x (bitmap %#x) for guest offset %#x", ref.entry(), ref.bitmap(),
                    guestOffset));
        }
        dst.position(dst.position() + n);
    }

    /** QEMU's qcow2_get_host_offset checks, made before any entry is used. */
    void validateHostOffset(SubclusterType type, L2Ref ref, long guestOffset) throws CorruptImageException {
        if ((type == SubclusterType.ZERO_PLAIN || type == SubclusterType.ZERO_ALLOC) && geometry.version() < 3) {
            throw new MetadataCorruptionException(String.format(
                    "Zero cluster entry found in pre-v3 image (L2 offset: %#x)", ref.l2Offset()));
        }
        if (type != SubclusterType.NORMAL && type != SubclusterType.ZERO_ALLOC
                && type != SubclusterType.UNALLOCATED_ALLOC) {
            return;
        }
        long host = L2Entry.hostOffset(ref.entry());
        if ((host & (geometry.clusterSize() - 1)) != 0) {
            throw new MetadataCorruptionException(String.format(
                    "Cluster allocation offset %#x unaligned (L2 offset: %#x)", host, ref.l2Offset()));
        }
        geometry.requireDataFileAtGuest(host, guestOffset & -geometry.clusterSize());
    }

    private void readData(L2Ref ref, int inCluster, ByteBuffer part) throws IOException {
        long host = L2Entry.hostOffset(ref.entry());
        if (dataFile == null) {
            throw new UnsupportedFeatureException("external data file not opened",
                    "The image keeps its data in an external data file, which was not opened");
        }
        // Past the end of the file reads as zeroes, as in QEMU.
        dataFile.readFully(part, host + inCluster);
    }

    /**
     * The buffer one read reuses for its compressed clusters, taken from a small pool of this image when the first
     * one comes and given back when the read ends: reads of compressed clusters (convert reads 2 MiB at a time on
     * 8 threads) allocate nothing once the pool is filled, and the pool keeps no more than it can hold.
     */
    private static final class Scratch {
        private final ArrayBlockingQueue<ByteBuffer> pool;
        private ByteBuffer compressed;
        private ByteBuffer cluster;

        Scratch(ArrayBlockingQueue<ByteBuffer> pool) {
            this.pool = pool;
        }

        /** Room for a compressed cluster of {@code clusterSize} bytes (its stream padded to sectors), or more. */
        ByteBuffer compressed(int length, int clusterSize) {
            if (compressed == null) {
                compressed = pool.poll();
            }
            if (compressed == null || compressed.capacity() < length) {
                compressed = ByteBuffer.allocate(Math.max(length, clusterSize + 1024));
            }
            return compressed.clear().limit(length);
        }

        void release() {
            if (compressed != null) {
                pool.offer(compressed);
            }
        }

        ByteBuffer cluster(int size) {
            if (cluster == null) {
                cluster = ByteBuffer.allocate(size);
            }
            return cluster.clear();
        }
    }

    private void readCompressed(L2Ref ref, int inCluster, ByteBuffer part, Scratch scratch) throws IOException {
        if (geometry.hasDataFile()) {
            throw new CorruptImageException("Compressed cluster in an image with an external data file");
        }
        CompressedDescriptor d = CompressedDescriptor.decode(ref.entry(), geometry.clusterBits());
        int clusterSize = (int) geometry.clusterSize();
        ByteBuffer compressed = scratch.compressed(d.length(), clusterSize);
        imageFile.readFully(compressed, d.hostOffset());
        compressed.flip();
        if (inCluster == 0 && part.remaining() == clusterSize) {
            codec.decompress(compressed, part.duplicate()); // the whole cluster: straight into the caller's buffer
            part.position(part.limit());
            return;
        }
        ByteBuffer cluster = scratch.cluster(clusterSize);
        codec.decompress(compressed, cluster);
        part.put(cluster.slice(inCluster, part.remaining()));
    }

    private void readBacking(long guestOffset, ByteBuffer part) throws IOException {
        if (!hasBacking) {
            zero(part);
            return;
        }
        if (backing == null) {
            throw new UnsupportedFeatureException("backing file not opened",
                    "This range reads from the backing file, which was not opened");
        }
        // A backing file smaller than the overlay reads as zeroes past its end.
        long inBacking = Math.max(0, Math.min(part.remaining(), backing.size() - guestOffset));
        if (inBacking > 0) {
            backing.read(guestOffset, part.slice(0, (int) inBacking));
        }
        zero(part.position((int) inBacking));
    }

    private static void zero(ByteBuffer b) {
        if (b.hasArray()) {
            int from = b.arrayOffset() + b.position();
            Arrays.fill(b.array(), from, from + b.remaining(), (byte) 0);
            b.position(b.limit());
            return;
        }
        while (b.remaining() >= 8) {
            b.putLong(0);
        }
        while (b.hasRemaining()) {
            b.put((byte) 0);
        }
    }
}
