package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.BlockStatus.Allocation;
import io.github.qcowloom.storage.AllocatedBytes;
import io.github.qcowloom.storage.HoleMap;
import io.github.qcowloom.storage.Storage;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Path;
import java.util.OptionalLong;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Block status's look into the host file under data clusters, as QEMU's bdrv_co_block_status makes it where qcow2
 * answers BDRV_BLOCK_RECURSE: a data cluster whose host bytes are a hole of the file reads as zeroes, and its status
 * says so ({@link Allocation#UNWRITTEN}), so that map, measure, compare, convert and NBD clients pass over it as
 * qemu-img and qemu-nbd do. QEMU looks only into images that look preallocated with metadata alone
 * (qcow2_detect_metadata_preallocation: clusters with a refcount outnumber those the image file occupies by a ninth,
 * and by two), decided once, at the first block status; so does this. Without the Java 22+ layer (no statx, no
 * SEEK_HOLE) nothing is looked into, and data stays data.
 *
 * <p>No lock of its own: the first callers decide, possibly two at once; one decision is kept and the other's hole
 * map closed, as is one made after {@link #close}, which the image calls once no request runs (a block status
 * beside it could ask a closed descriptor). Deciding counts refcounts under the metadata lock (see
 * {@link MetadataWriter}), so callers may hold the image lock and a guest cluster's lock, not the metadata lock.
 */
final class HostHoles implements Closeable {
    private static final Logger LOG = LoggerFactory.getLogger(HostHoles.class);

    /** Counts host clusters with a refcount: {@link io.github.qcowloom.alloc.RefcountTable#countReferenced}. */
    @FunctionalInterface
    interface ReferencedClusters {
        long count(long end, long limit) throws IOException;
    }

    /** What the first block status decided: the holes of the file that holds the data clusters, or null. */
    private record Decision(HoleMap holes) {
    }

    private final Storage imageFile;
    /** The file the data clusters lie in: the image file, or its external data file (null if not opened). */
    private final Storage dataHost;
    private final int clusterBits;
    private final ReferencedClusters referenced;
    /** Null until decided; {@link #CLOSED} once closed, so that a decision made after it is closed at once. */
    private final AtomicReference<Decision> decision = new AtomicReference<>();
    private static final Decision CLOSED = new Decision(null);

    HostHoles(Storage imageFile, Storage dataHost, int clusterBits, ReferencedClusters referenced) {
        this.imageFile = imageFile;
        this.dataHost = dataHost;
        this.clusterBits = clusterBits;
        this.referenced = referenced;
    }

    /**
     * {@code status}, a run of this image's data clusters, cut to the part whose host bytes are all data or all a
     * hole, and in a hole {@link Allocation#UNWRITTEN}; unchanged where the file is not looked into.
     */
    BlockStatus refine(BlockStatus status) throws IOException {
        if (status.allocation() != Allocation.DATA || status.host() == null) {
            return status;
        }
        HoleMap holes = decision().holes();
        if (holes == null) {
            return status;
        }
        HoleMap.Run run = holes.run(status.host().offset(), status.length());
        return new BlockStatus(run.length(), status.depth(), run.hole() ? Allocation.UNWRITTEN : Allocation.DATA,
                status.host());
    }

    private Decision decision() {
        Decision d = decision.get();
        if (d != null) {
            return d;
        }
        Decision made = decide();
        if (!decision.compareAndSet(null, made) && made.holes() != null) {
            made.holes().close(); // another caller decided first, or the image closed meanwhile
        }
        return decision.get();
    }

    private Decision decide() {
        Path image = imageFile.path();
        Path data = dataHost == null ? null : dataHost.path();
        OptionalLong occupied = image == null ? OptionalLong.empty() : AllocatedBytes.of(image);
        if (data == null || occupied.isEmpty()) {
            return new Decision(null);
        }
        try {
            long occupiedClusters = occupied.getAsLong() >>> clusterBits;
            long threshold = Math.max(occupiedClusters * 10 / 9, occupiedClusters + 2);
            long end = (imageFile.size() + (1L << clusterBits) - 1) >>> clusterBits;
            // With fewer clusters in the file than the threshold, QEMU's count cannot reach it: nothing to read.
            if (end < threshold || referenced.count(end, threshold) < threshold) {
                return new Decision(null);
            }
        } catch (IOException e) {
            // QEMU, too, takes a failure to decide as "not preallocated".
            LOG.debug("Not looking into the holes of {}: {}", image, e.toString());
            return new Decision(null);
        }
        return new Decision(HoleMap.open(data));
    }

    /** Closes the hole map, if one was opened; each map is closed once, here or by the caller that lost. */
    @Override
    public void close() {
        Decision d = decision.getAndSet(CLOSED);
        if (d != null && d.holes() != null) {
            d.holes().close();
        }
    }
}
