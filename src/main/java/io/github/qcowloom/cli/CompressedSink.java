package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.CompressedCluster;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * convert -c's writer: each worker compresses its chunk's clusters on its own virtual thread; they are written when
 * the chunk's turn comes ({@link ChunkCopy} runs it with in-order writes, on whichever worker is writing then), in
 * guest order as qemu-img convert -c writes, so that the image packs and places its clusters as QEMU's does.
 * Clusters that need no write (zeroes, or over a backing file what it shows) stay unallocated (with -S 0 only what the
 * backing file shows: zeroes are written, compressed); zeroes over a backing file become zero clusters; clusters that
 * do not shrink are stored uncompressed.
 */
final class CompressedSink implements ChunkCopy.Sink {
    private final Qcow2Image target;
    private final BlockDevice backing;
    private final int clusterSize;
    /** -S 0: every cluster is written, compressed, zeroes too (but what a backing file shows already). */
    private final boolean fullyAllocated;

    /** One cluster's write: its compressed data, or zeroes when {@code data} is null. */
    private record Step(long offset, int length, CompressedCluster data) {
    }

    CompressedSink(Qcow2Image target, boolean fullyAllocated) {
        this.target = target;
        this.fullyAllocated = fullyAllocated;
        this.backing = target.backing();
        this.clusterSize = (int) target.header().clusterSize();
    }

    /** Chunks of whole clusters: the copy's usual chunk, or one cluster when clusters are larger. */
    int chunkSize() {
        return Math.max(ChunkCopy.CHUNK, clusterSize);
    }

    /** Compresses the chunk's clusters now, on its worker; they are written when the chunk's turn comes. */
    @Override
    public ChunkCopy.Write prepare(long offset, ByteBuffer chunk, boolean zero) throws IOException {
        List<Step> steps = steps(offset, chunk, zero);
        return () -> {
            for (Step s : steps) {
                write(s);
            }
        };
    }

    private void write(Step s) throws IOException {
        try {
            if (s.data() == null) {
                target.writeZeroes(s.offset(), s.length(), false);
            } else {
                target.writeCompressed(s.data());
            }
        } catch (UnsupportedFeatureException e) {
            // qemu-img convert's report of a failed write (an image with a data file: "Operation not supported").
            throw new UnsupportedFeatureException(e.feature(), "error while writing at byte " + s.offset() + ": "
                    + e.getMessage());
        }
    }

    /** Decides and compresses the chunk's clusters ({@code zero}: all known to be zeroes); no write yet. */
    private List<Step> steps(long offset, ByteBuffer chunk, boolean zero) throws IOException {
        List<Step> steps = new ArrayList<>();
        if (zero && backing == null && !fullyAllocated) {
            return steps; // the chunk still takes its turn, writing nothing
        }
        for (int at = chunk.position(); at < chunk.limit(); at += clusterSize) {
            int n = Math.min(clusterSize, chunk.limit() - at);
            ByteBuffer cluster = chunk.slice(at, n);
            long guest = offset + at - chunk.position();
            if (fullyAllocated) {
                if (backing == null || !BackingCompare.same(backing, guest, cluster)) {
                    steps.add(new Step(guest, n, target.compressCluster(guest, cluster)));
                }
                continue;
            }
            if (BackingCompare.needsNoWrite(backing, guest, cluster)) {
                continue;
            }
            steps.add(new Step(guest, n, zero || ChunkCopy.isZero(cluster) ? null
                    : target.compressCluster(guest, cluster)));
        }
        return steps;
    }

    /** qemu-img convert -c's last request: the file is padded to whole sectors. */
    void finish() throws IOException {
        target.padFileToSector();
    }
}
