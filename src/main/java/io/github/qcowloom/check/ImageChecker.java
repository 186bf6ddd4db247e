package io.github.qcowloom.check;

import io.github.qcowloom.alloc.CopiedFlags;
import io.github.qcowloom.alloc.RefcountComparison;
import io.github.qcowloom.alloc.RefcountComparison.Mismatch;
import io.github.qcowloom.alloc.RefcountRebuild;
import io.github.qcowloom.alloc.RefcountRepair;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.api.CorruptImageException;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/** qemu-img check on a qcow2 file: the plain check (read-only) and the -r leaks / -r all repairs. */
public final class ImageChecker {
    private ImageChecker() {
    }

    /** Checks the image at {@code path} read-only; {@code filename} is the name to report. */
    public static CheckResult check(Path path, String filename) throws IOException {
        try (CheckedFile f = CheckedFile.open(path, false)) {
            return check(f, filename);
        }
    }

    /**
     * Repairs the image at {@code path} as qemu-img check -r does, then checks it again. When the refcount
     * structures need a rebuild, -r leaks fails and changes nothing; -r all rebuilds them first.
     */
    public static RepairOutcome repair(Path path, String filename, RepairMode mode) throws IOException {
        List<String> rebuildLines = null;
        RefcountComparison beforeRebuild = null;
        try (CheckedFile f = CheckedFile.open(path, true)) {
            ReferenceCount refs = ReferenceCount.compute(f.file, f.header, f.snapshots);
            RefcountRepair.Outcome o = mode == RepairMode.ALL ? RefcountRepair.repairAll(refs, f.table)
                    : RefcountRepair.repairLeaks(refs, f.table);
            if (o.unrepaired().contains(RefcountRepair.NEED_REBUILD)) {
                List<String> lines = new ArrayList<>(ordered(refs, o.before()));
                if (mode != RepairMode.ALL) {
                    lines.add(RefcountRepair.NEED_REBUILD);
                    return new RepairOutcome(null, lines);
                }
                // QEMU's rebuild_refcount_structure: new structures from the recount, then repair as usual.
                RefcountRebuild.Result r = RefcountRebuild.rebuild(f.file, f.header, refs);
                lines.add("Rebuilding refcount structure: new refcount table at offset " + r.tableOffset());
                rebuildLines = lines;
                beforeRebuild = o.before();
            } else {
                return repaired(f, filename, mode, refs, o);
            }
        }
        try (CheckedFile f = CheckedFile.open(path, true)) {
            ReferenceCount refs = ReferenceCount.compute(f.file, f.header, f.snapshots);
            RepairOutcome after = repaired(f, filename, mode, refs, RefcountRepair.repairAll(refs, f.table));
            List<String> lines = new ArrayList<>(rebuildLines);
            lines.addAll(after.messages());
            // The rebuild fixed the refcount mismatches and refcount-structure errors the first pass found, as QEMU
            // counts them; COPIED mismatches that merely followed from wrong refcounts are not counted.
            CheckResult r = after.result();
            long rebuilt = beforeRebuild.corruptions().size() + beforeRebuild.walkCorruptions();
            return new RepairOutcome(r.withFixed(r.corruptionsFixed() + rebuilt,
                    r.leaksFixed() + beforeRebuild.leakCount(), r.messages()), lines);
        }
    }

    /** The rest of a repair once the refcounts are fixed: COPIED flags, write-back, the second check. */
    private static RepairOutcome repaired(CheckedFile f, String filename, RepairMode mode, ReferenceCount refs,
            RefcountRepair.Outcome o) throws IOException {
        List<String> lines = new ArrayList<>(refs.problems());
        for (Mismatch m : sorted(o.before())) {
            boolean fixed = m.refcount() > m.references() || mode == RepairMode.ALL;
            lines.add(fixed ? "Repairing cluster " + m.cluster() + " refcount=" + m.refcount() + " reference="
                    + m.references() : m.message());
        }
        RefcountComparison after = RefcountComparison.compare(refs, f.table);
        // check_oflag_copied: -r all always repairs; -r leaks only if nothing else is left wrong.
        boolean fixCopied = mode == RepairMode.ALL || (after.leakCount() == 0 && after.corruptions().isEmpty()
                && after.walkCorruptions() == 0 && after.checkErrors() == 0);
        int copiedFixed = fixCopied ? CopiedFlags.repair(f.file, f.header, f.table, lines) : 0;
        f.writeBack();
        CheckResult r = check(f, filename);
        if (r.corruptions() == 0 && r.checkErrors() == 0) {
            f.markCleanAndConsistent();
        }
        long corruptionsFixed = o.corruptionsFixed() + copiedFixed;
        if (corruptionsFixed == 0 && o.leaksFixed() == 0) {
            return new RepairOutcome(r, r.messages());
        }
        // qemu-img checks again after a fix and reports that result with the fixed counts.
        lines.addAll(r.messages());
        return new RepairOutcome(r.withFixed(corruptionsFixed, o.leaksFixed(), r.messages()), lines);
    }

    static CheckResult check(CheckedFile f, String filename) throws IOException {
        ReferenceCount refs = ReferenceCount.compute(f.file, f.header, f.snapshots);
        RefcountComparison cmp = RefcountComparison.compare(refs, f.table);
        ClusterStats stats = ClusterStats.of(f);
        long cs = f.header.clusterSize();
        // qcow2_check_refcounts: res->bfi.total_clusters = size_to_clusters(virtual size).
        long total = (f.header.size() + cs - 1) / cs;
        long end = (highestInUse(refs, f.table) + 1) * cs;
        return new CheckResult(filename, "qcow2", cmp.checkErrors(), end, cmp.corruptionCount(), cmp.leakCount(),
                0, 0, total, stats.allocated(), stats.fragmented(), stats.compressed(), ordered(refs, cmp));
    }

    /**
     * compare_refcounts' highest_cluster: the last cluster whose stored refcount or references are non-zero
     * (clusters whose refcount cannot be read are skipped), which sets image-end-offset.
     */
    private static long highestInUse(ReferenceCount refs, RefcountTable table) throws IOException {
        long highest = 0;
        for (long c = 0; c < refs.clusters(); c++) {
            long stored;
            try {
                stored = table.get(c);
            } catch (CorruptImageException e) {
                continue;
            }
            if (stored != 0 || refs.references(c) != 0) {
                highest = c;
            }
        }
        return highest;
    }

    /**
     * The findings in qemu-img's order: the walk's corruptions, then compare_refcounts' lines by cluster, then
     * check_oflag_copied's.
     */
    private static List<String> ordered(ReferenceCount refs, RefcountComparison cmp) {
        List<String> walk = refs.problems();
        List<String> rest = cmp.problems().subList(walk.size(), cmp.problems().size());
        List<String> out = new ArrayList<>(walk);
        rest.stream().filter(s -> s.startsWith("Can't get refcount")).forEach(out::add);
        sorted(cmp).forEach(m -> out.add(m.message()));
        rest.stream().filter(s -> !s.startsWith("Can't get refcount")).forEach(out::add);
        return out;
    }

    private static List<Mismatch> sorted(RefcountComparison cmp) {
        List<Mismatch> all = new ArrayList<>(cmp.corruptions());
        all.addAll(cmp.leaks());
        all.sort(Comparator.comparingLong(Mismatch::cluster));
        return all;
    }
}
