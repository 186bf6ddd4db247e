package io.github.qcowloom.image;

import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.format.L2Entry;

/**
 * The bytes {@code [from, to)} of a cluster that a write of {@code [start, end)} fills, as QEMU's calculate_l2_meta
 * works them out: the guest's data plus the copy-on-write head {@code [from, start)} and tail {@code [end, to)}
 * that complete what the new data lands in. Without extended L2 that is the whole cluster; with it, only the
 * subclusters the write touches (widened, when the old cluster is another one, to every allocated subcluster).
 */
record CowRange(int from, int start, int end, int to) {

    boolean hasCow() {
        return from < start || end < to;
    }

    /** First subcluster the range covers. */
    int firstSubcluster(ImageGeometry g) {
        return from / g.subclusterSize();
    }

    /** One past the last subcluster the range covers. */
    int endSubcluster(ImageGeometry g) {
        return (to - 1) / g.subclusterSize() + 1;
    }

    /**
     * The range for a write into a new host cluster replacing {@code old} (unallocated, zero, compressed, or a
     * cluster shared with others): calculate_l2_meta without keep_old. An allocated old cluster's allocated
     * subclusters all move to the new one; unallocated and zero ones keep their state outside the range.
     */
    static CowRange forNewCluster(ImageGeometry g, L2Mapping old, GuestCluster cluster, int start, int end)
            throws MetadataCorruptionException {
        int cs = (int) g.clusterSize();
        if (!g.extendedL2()) {
            return new CowRange(0, start, end, cs);
        }
        int sc = g.subclusterSize();
        int firstSc = start / sc;
        int lastSc = (end - 1) / sc;
        int allocated = (int) (old.words().bitmap() & L2Entry.BITMAP_ALLOC_MASK);
        int from = switch (old.subcluster(firstSc)) {
            case COMPRESSED -> 0;
            // numberOfTrailingZeros(0) is 32: no allocated subcluster widens nothing.
            case NORMAL, ZERO_ALLOC, UNALLOCATED_ALLOC -> Math.min(firstSc, Integer.numberOfTrailingZeros(allocated))
                    * sc;
            case ZERO_PLAIN, UNALLOCATED_PLAIN -> firstSc * sc;
            case INVALID -> throw L2Mapping.found(old, g.l2Index(cluster));
        };
        int to = switch (old.subcluster(lastSc)) {
            case COMPRESSED -> cs;
            case NORMAL, ZERO_ALLOC, UNALLOCATED_ALLOC -> cs
                    - Math.min(31 - lastSc, Integer.numberOfLeadingZeros(allocated)) * sc;
            case ZERO_PLAIN, UNALLOCATED_PLAIN -> (lastSc + 1) * sc;
            case INVALID -> throw L2Mapping.found(old, g.l2Index(cluster));
        };
        return new CowRange(from, start, end, to);
    }

    /**
     * Extended L2, a write in place into {@code owned}'s cluster, which this image owns alone: calculate_l2_meta
     * with keep_old. Allocated subclusters at the edges need no copy; unallocated or zero ones are completed with
     * what the guest saw in them.
     */
    static CowRange forOwnedCluster(ImageGeometry g, L2Mapping.Data owned, GuestCluster cluster, int start, int end)
            throws MetadataCorruptionException {
        int sc = g.subclusterSize();
        int firstSc = start / sc;
        int lastSc = (end - 1) / sc;
        int from = switch (owned.subcluster(firstSc)) {
            case NORMAL -> start;
            case ZERO_ALLOC, UNALLOCATED_ALLOC -> firstSc * sc;
            default -> throw L2Mapping.found(owned, g.l2Index(cluster));
        };
        int to = switch (owned.subcluster(lastSc)) {
            case NORMAL -> end;
            case ZERO_ALLOC, UNALLOCATED_ALLOC -> (lastSc + 1) * sc;
            default -> throw L2Mapping.found(owned, g.l2Index(cluster));
        };
        return new CowRange(from, start, end, to);
    }
}
