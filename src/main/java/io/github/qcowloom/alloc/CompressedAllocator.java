package io.github.qcowloom.alloc;

import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.format.CompressedDescriptor;
import java.io.IOException;

/**
 * Host bytes for compressed clusters, packed back to back as QEMU's qcow2_alloc_bytes packs them. A running
 * free-byte offset points into the host cluster last packed; the next compressed cluster starts there (to the byte:
 * only its L2 descriptor rounds to sectors). Every host cluster a compressed cluster touches gains one reference
 * for it. When the rest of the cluster is too small, the data runs on into a new cluster if that is the very next
 * one, and otherwise starts afresh in the new cluster, leaving the old cluster's tail unused. All methods run
 * under the image's metadata lock, like the {@link RefcountTable} they update.
 */
public final class CompressedAllocator {
    private final RefcountTable refcounts;
    private final int clusterBits;
    private final long clusterSize;
    /** First host offset a compressed descriptor cannot hold (QEMU caps at its cluster_offset_mask, 2^56). */
    private final long offsetLimit;
    /**
     * QEMU's free_byte_offset: where the next compressed cluster may start, inside a host cluster that holds
     * compressed data; 0 when there is no such place (no cluster yet, or the last one filled up exactly).
     */
    private long freeByteOffset;

    /**
     * An allocator packing into host clusters counted by {@code refcounts}, which from now on tells it of every
     * cluster whose refcount drops to 0 (see {@link #freed}); one allocator per refcount table.
     */
    public CompressedAllocator(RefcountTable refcounts, int clusterBits) {
        this.refcounts = refcounts;
        this.clusterBits = clusterBits;
        this.clusterSize = 1L << clusterBits;
        this.offsetLimit = Math.min(1L << CompressedDescriptor.sizeShift(clusterBits), 1L << 56);
        refcounts.onFreed(this::freed);
    }

    /**
     * Reserves {@code size} bytes (1 to a cluster) for one compressed cluster and returns their host offset. The
     * refcounts of the host clusters they touch are raised in the cache; the caller writes the bytes, then the L2
     * descriptor, so that the increase is flushed before the entry that needs it.
     */
    public long allocate(int size) throws IOException {
        if (size < 1 || size > clusterSize) {
            throw new IllegalArgumentException("compressed size " + size + " for clusters of " + clusterSize);
        }
        long offset = freeByteOffset;
        // A cluster whose refcount is saturated cannot take one more compressed cluster (refcount_bits=1: never).
        if (offset != 0 && refcounts.get(new HostCluster(offset >>> clusterBits)) == refcounts.maxRefcount()) {
            offset = 0;
        }
        long freeInCluster = clusterSize - (offset & (clusterSize - 1));
        if (offset == 0 || freeInCluster < size) {
            long next = offset - (offset & (clusterSize - 1)) + clusterSize;
            // QEMU runs on into the next cluster only if counting it needs no new refcount block: a new block
            // makes its update_refcount answer EAGAIN, and the retry starts afresh in the new cluster.
            boolean mayRunOn = offset != 0 && refcounts.hasBlockFor(next >>> clusterBits);
            long fresh = refcounts.allocate(1).bytes(); // refcount 1: this compressed cluster's reference
            if (fresh + clusterSize > offsetLimit) {
                refcounts.update(new HostCluster(fresh >>> clusterBits), -1);
                throw new ImageTooLargeException("File too large: compressed data at host offset " + fresh
                        + " cannot be described by an L2 entry");
            }
            if (mayRunOn && fresh == next) {
                // The data runs on from the old cluster's tail into the next one: both are referenced.
                refcounts.update(new HostCluster(offset >>> clusterBits), 1);
            } else {
                offset = fresh;
            }
        } else {
            refcounts.update(new HostCluster(offset >>> clusterBits), 1);
        }
        long end = offset + size;
        freeByteOffset = (end & (clusterSize - 1)) == 0 ? 0 : end;
        return offset;
    }

    /**
     * Host cluster {@code cluster}'s refcount dropped to 0 (told by the {@link RefcountTable}, whatever lowered it:
     * a deferred free, a snapshot delete or apply, a pool giving clusters back): the packing may not continue in
     * it, because the cluster can now be handed out whole (as a data cluster or a table) and bytes packed into its
     * tail would overwrite that. QEMU 7.2 keeps packing there and corrupts the new contents.
     */
    private void freed(long cluster) {
        if (freeByteOffset != 0 && freeByteOffset >>> clusterBits == cluster) {
            freeByteOffset = 0;
        }
    }
}
