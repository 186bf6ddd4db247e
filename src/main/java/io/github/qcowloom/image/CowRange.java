package io.github.qcowloom.image;

import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.SubclusterType;

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
     * The range for a write into a new host cluster replacing {@code ref} (unallocated, zero, compressed, or a
     * cluster shared with others): calculate_l2_meta without keep_old. An allocated old cluster's allocated
     * subclusters all move to the new one; unallocated and zero ones keep their state outside the range.
     */
    static CowRange forNewCluster(ImageGeometry g, L2Ref ref, long cluster, int start, int end)
            throws MetadataCorruptionException {
        int cs = (int) g.clusterSize();
        if (!g.extendedL2()) {
            return new CowRange(0, start, end, cs);
        }
        int sc = g.subclusterSize();
        int firstSc = start / sc;
        int lastSc = (end - 1) / sc;
        int allocated = (int) (ref.bitmap() & L2Entry.BITMAP_ALLOC_MASK);
        int from = switch (typeAt(g, ref, cluster, firstSc)) {
            case COMPRESSED -> 0;
            // numberOfTrailingZeros(0) is 32: no allocated subcluster widens nothing.
            case NORMAL, ZERO_ALLOC, UNALLOCATED_ALLOC -> Math.min(firstSc, Integer.numberOfTrailingZeros(allocated))
                    * sc;
            case ZERO_PLAIN, UNALLOCATED_PLAIN -> firstSc * sc;
            case INVALID -> throw invalid(ref, cluster, g);
        };
        int to = switch (typeAt(g, ref, cluster, lastSc)) {
            case COMPRESSED -> cs;
            case NORMAL, ZERO_ALLOC, UNALLOCATED_ALLOC -> cs
                    - Math.min(31 - lastSc, Integer.numberOfLeadingZeros(allocated)) * sc;
            case ZERO_PLAIN, UNALLOCATED_PLAIN -> (lastSc + 1) * sc;
            case INVALID -> throw invalid(ref, cluster, g);
        };
        return new CowRange(from, start, end, to);
    }

    /**
     * Extended L2, a write in place into {@code ref}'s cluster, which this image owns alone: calculate_l2_meta
     * with keep_old. Allocated subclusters at the edges need no copy; unallocated or zero ones are completed with
     * what the guest saw in them.
     */
    static CowRange forOwnedCluster(ImageGeometry g, L2Ref ref, long cluster, int start, int end)
            throws MetadataCorruptionException {
        int sc = g.subclusterSize();
        int firstSc = start / sc;
        int lastSc = (end - 1) / sc;
        int from = switch (typeAt(g, ref, cluster, firstSc)) {
            case NORMAL -> start;
            case ZERO_ALLOC, UNALLOCATED_ALLOC -> firstSc * sc;
            default -> throw invalid(ref, cluster, g);
        };
        int to = switch (typeAt(g, ref, cluster, lastSc)) {
            case NORMAL -> end;
            case ZERO_ALLOC, UNALLOCATED_ALLOC -> (lastSc + 1) * sc;
            default -> throw invalid(ref, cluster, g);
        };
        return new CowRange(from, start, end, to);
    }

    /** True if every subcluster the write touches is allocated: it can go to the host cluster as it is. */
    static boolean allAllocated(ImageGeometry g, L2Ref ref, long cluster, int start, int end)
            throws MetadataCorruptionException {
        int sc = g.subclusterSize();
        for (int i = start / sc; i <= (end - 1) / sc; i++) {
            SubclusterType t = typeAt(g, ref, cluster, i);
            if (t == SubclusterType.INVALID) {
                throw invalid(ref, cluster, g);
            }
            if (t != SubclusterType.NORMAL) {
                return false;
            }
        }
        return true;
    }

    private static SubclusterType typeAt(ImageGeometry g, L2Ref ref, long cluster, int sc) {
        return L2Entry.subclusterType(ref.entry(), ref.bitmap(), sc, g.hasDataFile());
    }

    private static MetadataCorruptionException invalid(L2Ref ref, long cluster, ImageGeometry g) {
        return new MetadataCorruptionException(String.format(
                "Invalid cluster entry found (L2 offset: %#x, L2 index: %#x)", ref.l2Offset(),
                cluster & (g.l2Entries() - 1)));
    }
}
