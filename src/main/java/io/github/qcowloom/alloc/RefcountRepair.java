package io.github.qcowloom.alloc;

import java.io.IOException;
import java.util.List;

/**
 * Sets stored refcounts to a {@link ReferenceCount}'s references, as qemu-img check -r leaks and -r all do.
 *
 * <p>Changes go through {@link RefcountTable#update} (the refblock cache becomes dirty). The caller holds the
 * image's metadata lock and afterwards writes back the refblock cache and syncs.
 */
public final class RefcountRepair {
    private RefcountRepair() {
    }

    /** Message QEMU prints when the refcount structures themselves must be rebuilt. */
    public static final String NEED_REBUILD = "ERROR need to rebuild refcount structures";

    /**
     * What a repair did.
     *
     * @param before the comparison the repair worked from
     * @param leaksFixed leaked clusters whose refcount was lowered to their references
     * @param corruptionsFixed clusters whose too-low refcount was raised to their references
     * @param unrepaired what a comparison after the repair still finds (as QEMU checks again), in QEMU's words
     */
    public record Outcome(RefcountComparison before, int leaksFixed, int corruptionsFixed, List<String> unrepaired) {
        public Outcome {
            unrepaired = List.copyOf(unrepaired);
        }
    }

    /**
     * qemu-img check -r leaks: lowers every leaked cluster's refcount to its references. As in QEMU, nothing is
     * changed when the refcount structures need a rebuild (a referenced cluster with refcount 0, or an unusable
     * refblock): that is reported as {@link #NEED_REBUILD}.
     */
    public static Outcome repairLeaks(ReferenceCount refs, RefcountTable table) throws IOException {
        RefcountComparison cmp = RefcountComparison.compare(refs, table);
        if (cmp.rebuildNeeded()) {
            return new Outcome(cmp, 0, 0, List.of(NEED_REBUILD));
        }
        int fixed = lowerLeaks(cmp, table);
        return new Outcome(cmp, fixed, 0, RefcountComparison.compare(refs, table).messages());
    }

    /**
     * qemu-img check -r all, as far as refcounts go: lowers leaked refcounts and raises too-low ones to the
     * references. Where QEMU would rebuild the refcount structures because a stored refcount is 0, raising it in
     * a sound refblock gives the same refcounts. A cluster that no sound refblock covers, or a broken reftable
     * entry or refblock, needs the rebuild itself: then nothing is changed and {@link #NEED_REBUILD} is reported.
     * COPIED flags that still disagree and the walk's other corruptions are L1/L2 repairs, left to the caller and
     * reported.
     */
    public static Outcome repairAll(ReferenceCount refs, RefcountTable table) throws IOException {
        RefcountComparison cmp = RefcountComparison.compare(refs, table);
        boolean uncovered = cmp.corruptions().stream().anyMatch(m -> !refs.hasRefblock(m.cluster()));
        if (refs.refblocksBroken() || uncovered || cmp.checkErrors() > 0) {
            return new Outcome(cmp, 0, 0, List.of(NEED_REBUILD));
        }
        int leaksFixed = lowerLeaks(cmp, table);
        for (RefcountComparison.Mismatch m : cmp.corruptions()) {
            table.update(new HostCluster(m.cluster()), m.references() - m.refcount());
        }
        return new Outcome(cmp, leaksFixed, cmp.corruptions().size(),
                RefcountComparison.compare(refs, table).messages());
    }

    private static int lowerLeaks(RefcountComparison cmp, RefcountTable table) throws IOException {
        for (RefcountComparison.Mismatch m : cmp.leaks()) {
            table.update(new HostCluster(m.cluster()), m.references() - m.refcount());
        }
        return cmp.leaks().size();
    }
}
