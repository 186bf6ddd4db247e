package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.compress.ClusterCodec;
import io.github.qcowloom.format.SubclusterType;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.Zeroes;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;

/**
 * A guest read as straight-line code: per cluster, L1 then L2 (a cache miss yields the thread there), then the
 * data from the image file, the data file, the backing file, a decompressed cluster, or zeroes. The parts that go
 * to a file are read side by side once the range is mapped, as QEMU reads them ({@link PartTasks}).
 */
final class ReadPath {
    private final ImageGeometry geometry;
    private final ClusterMapper mapper;
    private final Storage imageFile;
    /** Where data clusters live: the image file, or the external data file (null if not opened). */
    private final Storage dataFile;
    /** The data clusters' guest data, through the cipher of an encrypted image. */
    private final GuestData guestData;
    /** The backing image, or null when there is none or it was not opened. */
    private final BlockDevice backing;
    private final boolean hasBacking;
    private final ClusterCodec codec;
    /** Buffers for compressed clusters, kept between reads (see {@link Scratch}). */
    private final ArrayBlockingQueue<ByteBuffer> scratchPool = new ArrayBlockingQueue<>(16);

    ReadPath(ImageGeometry geometry, ClusterMapper mapper, Storage imageFile, Storage dataFile, GuestData guestData,
            BlockDevice backing, boolean hasBacking, ClusterCodec codec) {
        this.geometry = geometry;
        this.mapper = mapper;
        this.imageFile = imageFile;
        this.dataFile = dataFile;
        this.guestData = guestData;
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

    /**
     * Maps the range part by part, filling zeroes and compressed clusters as it goes, and then reads the parts that
     * go to a file side by side ({@link PartTasks}).
     */
    private void readRange(long offset, ByteBuffer dst, Scratch scratch) throws IOException {
        PartTasks tasks = new PartTasks(dataFile != null && dataFile.waitsForDevice());
        long clusterSize = geometry.clusterSize();
        while (dst.hasRemaining()) {
            GuestCluster cluster = new GuestCluster(offset >>> geometry.clusterBits());
            int inCluster = (int) (offset & (clusterSize - 1));
            int n = (int) Math.min(dst.remaining(), clusterSize - inCluster);
            L2Mapping mapping = mapper.lookup(cluster);
            if (geometry.extendedL2()) {
                readSubclusters(mapping, offset, inCluster, n, dst, scratch, tasks);
            } else {
                if (mapping instanceof L2Mapping.Data data && n < dst.remaining()) {
                    // One read for the clusters in a row in the file. Safe under the shared image lock the read
                    // holds: no cluster it maps is freed before the request ends (frees wait for the exclusive side).
                    n = mapper.contiguousRun(data, cluster, n, dst.remaining(), (next, bytes) -> true);
                }
                readPart(mapping.subcluster(0), mapping, offset, inCluster, n, dst, scratch, tasks);
            }
            offset += n;
        }
        tasks.runAll();
    }

    /** Splits a cluster's part into runs of subclusters of one type. */
    private void readSubclusters(L2Mapping mapping, long offset, int inCluster, int n, ByteBuffer dst,
            Scratch scratch, PartTasks tasks) throws IOException {
        int scSize = geometry.subclusterSize();
        int end = inCluster + n;
        int pos = inCluster;
        while (pos < end) {
            int sc = pos / scSize;
            SubclusterType type = mapping.subcluster(sc);
            int runEnd = Math.min(end, (sc + 1) * scSize);
            while (runEnd < end && mapping.subcluster(runEnd / scSize) == type) {
                runEnd = Math.min(end, runEnd + scSize);
            }
            readPart(type, mapping, offset + (pos - inCluster), pos, runEnd - pos, dst, scratch, tasks);
            pos = runEnd;
        }
    }

    /** One part: zeroes and compressed clusters are filled at once, file reads are added to {@code tasks}. */
    private void readPart(SubclusterType type, L2Mapping mapping, long guestOffset, int inCluster, int n,
            ByteBuffer dst, Scratch scratch, PartTasks tasks) throws IOException {
        ByteBuffer part = dst.slice(dst.position(), n);
        switch (mapping) {
            case L2Mapping.Data data -> {
                if (type == SubclusterType.NORMAL) {
                    tasks.add(() -> readData(data, inCluster, guestOffset, part));
                } else {
                    unallocatedOrZero(type, guestOffset, part, tasks);
                }
            }
            case L2Mapping.Unallocated unallocated -> unallocatedOrZero(type, guestOffset, part, tasks);
            case L2Mapping.Zero zero -> Zeroes.fill(part);
            case L2Mapping.Compressed compressed -> readCompressed(compressed, inCluster, part, scratch);
            case L2Mapping.Invalid invalid -> throw new MetadataCorruptionException(String.format(
                    "Invalid cluster entry %#x (bitmap %#x) for guest offset %#x", invalid.words().entry(),
                    invalid.words().bitmap(), guestOffset));
        }
        dst.position(dst.position() + n);
    }

    /** A part without data of its own: zeroes where the entry says so, else the backing file's (or zeroes). */
    private void unallocatedOrZero(SubclusterType type, long guestOffset, ByteBuffer part, PartTasks tasks) {
        if (type == SubclusterType.ZERO_PLAIN || type == SubclusterType.ZERO_ALLOC || !hasBacking) {
            Zeroes.fill(part);
        } else {
            tasks.add(() -> readBacking(guestOffset, part));
        }
    }

    private void readData(L2Mapping.Data data, int inCluster, long guestOffset, ByteBuffer part)
            throws IOException {
        if (dataFile == null) {
            throw new UnsupportedFeatureException("external data file not opened",
                    "The image keeps its data in an external data file, which was not opened");
        }
        // Past the end of the file reads as zeroes, as in QEMU.
        long host = data.cluster().bytes() + inCluster;
        guestData.at(host, guestOffset).readFully(part, host);
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

    private void readCompressed(L2Mapping.Compressed mapping, int inCluster, ByteBuffer part, Scratch scratch)
            throws IOException {
        if (geometry.hasDataFile()) {
            throw new CorruptImageException("Compressed cluster in an image with an external data file");
        }
        int clusterSize = (int) geometry.clusterSize();
        ByteBuffer compressed = scratch.compressed(mapping.length(), clusterSize);
        imageFile.readFully(compressed, mapping.at().bytes());
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
        if (backing == null) {
            throw new UnsupportedFeatureException("backing file not opened",
                    "This range reads from the backing file, which was not opened");
        }
        // A backing file smaller than the overlay reads as zeroes past its end.
        long inBacking = Math.max(0, Math.min(part.remaining(), backing.size() - guestOffset));
        if (inBacking > 0) {
            backing.read(guestOffset, part.slice(0, (int) inBacking));
        }
        Zeroes.fill(part.position((int) inBacking));
    }
}
