package io.github.qcowloom.alloc;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Stored refcounts compared with a {@link ReferenceCount} (QEMU's compare_refcounts and check_oflag_copied).
 *
 * <p>Finds leaks, too-low refcounts and COPIED flags that disagree with the refcount, plus the walk's own
 * corruptions.
 *
 * @param leaks clusters whose refcount exceeds their references
 * @param corruptions clusters whose refcount is below their references
 * @param problems the walk's corruptions and the COPIED mismatches, in QEMU's words
 * @param walkCorruptions corruptions the walk found
 * @param copiedMismatches L1 or L2 entries of the active tree whose COPIED flag disagrees with refcount == 1
 * @param checkErrors refcounts that could not be read (a misaligned refblock)
 * @param rebuildNeeded QEMU would rebuild the refcount structures: a referenced cluster has refcount 0, or a
 *     reftable entry or refblock is unusable
 */
public record RefcountComparison(List<Mismatch> leaks, List<Mismatch> corruptions, List<String> problems,
        int walkCorruptions, int copiedMismatches, int checkErrors, boolean rebuildNeeded) {
    /** How the lines of the COPIED check begin (QEMU's check_oflag_copied). */
    public static final String COPIED_ERROR = "ERROR OFLAG_COPIED ";
    /** How the lines of a refcount that could not be read begin. */
    public static final String UNREADABLE = "Can't get refcount for cluster ";

    public RefcountComparison {
        leaks = List.copyOf(leaks);
        corruptions = List.copyOf(corruptions);
        problems = List.copyOf(problems);
    }

    /** One cluster whose stored refcount differs from its references. */
    public record Mismatch(long cluster, long refcount, long references) {
        /** QEMU's line: "Leaked cluster N refcount=X reference=Y" or "ERROR cluster N refcount=X reference=Y". */
        public String message() {
            return (refcount > references ? "Leaked" : "ERROR") + " cluster " + cluster + " refcount=" + refcount
                    + " reference=" + references;
        }
    }

    /** The number qemu-img check reports as "leaks". */
    public int leakCount() {
        return leaks.size();
    }

    /** The number qemu-img check reports as "corruptions". */
    public int corruptionCount() {
        return corruptions.size() + walkCorruptions + copiedMismatches;
    }

    /** True if nothing is wrong. */
    public boolean clean() {
        return leakCount() == 0 && corruptionCount() == 0 && checkErrors == 0;
    }

    /** Every finding as qemu-img check prints it on stderr. */
    public List<String> messages() {
        List<String> out = new ArrayList<>(problems);
        corruptions.forEach(m -> out.add(m.message()));
        leaks.forEach(m -> out.add(m.message()));
        return out;
    }

    /** Compares the refcounts in {@code table} with {@code refs}; reads only. */
    public static RefcountComparison compare(ReferenceCount refs, RefcountTable table) throws IOException {
        List<Mismatch> leaks = new ArrayList<>();
        List<Mismatch> low = new ArrayList<>();
        List<String> problems = new ArrayList<>(refs.problems());
        int[] checkErrors = {0};
        boolean[] rebuild = {refs.refblocksBroken()};
        // compare_refcounts: every cluster the recount covers (those with neither a reference nor a refblock
        // entry are equal, 0 and 0, and skipped).
        refs.forEachCandidate(table, c -> {
            long stored;
            try {
                stored = table.get(new HostCluster(c));
            } catch (CorruptImageException e) {
                problems.add(UNREADABLE + c + ": " + e.getMessage());
                checkErrors[0]++;
                return;
            }
            long refCount = refs.references(c);
            if (stored == refCount) {
                return;
            }
            // An on-disk 0 for a referenced cluster makes QEMU rebuild instead of repairing in place.
            if (stored == 0) {
                rebuild[0] = true;
            }
            if (Long.compareUnsigned(stored, refCount) < 0) {
                low.add(new Mismatch(c, stored, refCount));
            } else {
                leaks.add(new Mismatch(c, stored, refCount));
            }
        });
        int copied = checkCopied(refs, table, problems);
        return new RefcountComparison(leaks, low, problems, refs.corruptions(), copied, checkErrors[0],
                rebuild[0]);
    }

    /**
     * QEMU's check_oflag_copied: in the active tree, every L2 table and every NORMAL or ZERO_ALLOC data cluster
     * must have COPIED set exactly when its stored refcount is 1 (with an external data file, data clusters
     * count as refcount 1). A refcount that cannot be read is skipped without a message, as QEMU does.
     */
    private static int checkCopied(ReferenceCount refs, RefcountTable table, List<String> problems)
            throws IOException {
        int bits = refs.header().clusterBits();
        int mismatches = 0;
        long[] l1 = refs.activeL1();
        for (int i = 0; i < l1.length; i++) {
            long l2Offset = L1Entry.l2Offset(l1[i]);
            if (l2Offset == 0) {
                continue;
            }
            try {
                long refcount = table.get(new HostCluster(l2Offset >>> bits));
                if ((refcount == 1) != L1Entry.copied(l1[i])) {
                    problems.add(COPIED_ERROR + "L2 cluster: l1_index=" + i + " l1_entry="
                            + Long.toHexString(l1[i]) + " refcount=" + Long.toUnsignedString(refcount));
                    mismatches++;
                }
            } catch (CorruptImageException e) {
                // Skipped silently, like QEMU.
            }
        }
        boolean dataFile = refs.header().hasDataFile();
        for (long entry : refs.activeDataEntries()) {
            try {
                long refcount = dataFile ? 1 : table.get(new HostCluster(L2Entry.hostOffset(entry) >>> bits));
                if ((refcount == 1) != L2Entry.copied(entry)) {
                    problems.add(COPIED_ERROR + "data cluster: l2_entry=" + Long.toHexString(entry)
                            + " refcount=" + Long.toUnsignedString(refcount));
                    mismatches++;
                }
            } catch (CorruptImageException e) {
                // Skipped silently, like QEMU.
            }
        }
        return mismatches;
    }
}
