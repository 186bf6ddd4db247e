package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.CompressedCluster;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.ZeroData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * convert -c's writer: each worker compresses its chunk's clusters on its own virtual thread; they are written when
 * the chunk's turn comes ({@link ChunkCopy} runs it with in-order writes, on whichever worker is writing then), in
 * guest order as qemu-img convert -c writes, so that the image packs and places its clusters as QEMU's does.
 * Clusters that do not shrink are stored uncompressed.
 *
 * <p>Into a new image, clusters that need no write (zeroes, or over a backing file what it shows) stay unallocated
 * (with -S 0 only what the backing file shows: zeroes are written, compressed); zeroes over a backing file become
 * zero clusters. Into an existing one (-n), qemu-img knows nothing of what the image holds: zeroes are written as
 * zeroes (or not at all, where the caller is told the target reads as zeroes), every other cluster compressed, and
 * a cluster the image has already allocated refuses its compressed data, as QEMU's does ("compression can't
 * overwrite anything").
 */
final class CompressedSink implements ChunkCopy.Sink {
    private final Qcow2Image target;
    /** What a new image shows already where it has no cluster: its backing file, or null. */
    private final BlockDevice backing;
    private final int clusterSize;
    /** -S 0: every cluster is written, compressed, zeroes too (but what a backing file shows already). */
    private final boolean fullyAllocated;
    /** An existing image (-n): ranges of zeroes are written too, through {@code zeroes}. */
    private final boolean existing;
    private final ChunkCopy.ZeroWriter zeroes;

    /** One write: a cluster's compressed data, or zeroes over {@code length} bytes when {@code data} is null. */
    private record Step(long offset, long length, CompressedCluster data) {
    }

    private CompressedSink(Qcow2Image target, boolean fullyAllocated, boolean existing, ChunkCopy.ZeroWriter zeroes) {
        this.target = target;
        this.fullyAllocated = fullyAllocated;
        this.existing = existing;
        this.zeroes = zeroes;
        this.backing = existing ? null : target.backing();
        this.clusterSize = (int) target.header().clusterSize();
    }

    /** convert -c into {@code target}, just created (over its backing file, if it has one). */
    static CompressedSink intoNew(Qcow2Image target, boolean fullyAllocated) {
        return new CompressedSink(target, fullyAllocated, false, (at, length) -> target.writeZeroes(at, length, false));
    }

    /**
     * convert -n -c into {@code target} as it is: its backing file is not looked at (qemu-img's target_has_backing
     * is false without -B), and ranges of zeroes go to {@code zeroes}.
     */
    static CompressedSink intoExisting(Qcow2Image target, boolean fullyAllocated, ChunkCopy.ZeroWriter zeroes) {
        return new CompressedSink(target, fullyAllocated, true, zeroes);
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
                zeroes.writeZeroes(s.offset(), s.length());
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
        if (zero && !fullyAllocated && backing == null) {
            if (existing) {
                steps.add(new Step(offset, chunk.remaining(), null));
            }
            return steps; // the chunk still takes its turn
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
            if (!existing && BackingCompare.needsNoWrite(backing, guest, cluster)) {
                continue;
            }
            if (zero || ZeroData.isZero(cluster)) {
                addZeroes(steps, guest, n);
            } else {
                steps.add(new Step(guest, n, target.compressCluster(guest, cluster)));
            }
        }
        return steps;
    }

    /** Zeroes over {@code length} bytes at {@code guest}: one write with the zeroes just before, if they are. */
    private static void addZeroes(List<Step> steps, long guest, int length) {
        if (!steps.isEmpty()) {
            Step last = steps.getLast();
            if (last.data() == null && last.offset() + last.length() == guest) {
                steps.set(steps.size() - 1, new Step(last.offset(), last.length() + length, null));
                return;
            }
        }
        steps.add(new Step(guest, length, null));
    }

    /** qemu-img convert -c's last request: the file is padded to whole sectors. */
    void finish() throws IOException {
        target.padFileToSector();
    }
}
