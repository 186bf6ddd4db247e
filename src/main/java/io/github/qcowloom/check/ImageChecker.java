package io.github.qcowloom.check;

import io.github.qcowloom.alloc.CopiedFlags;
import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountComparison;
import io.github.qcowloom.alloc.RefcountComparison.Mismatch;
import io.github.qcowloom.alloc.RefcountRebuild;
import io.github.qcowloom.alloc.RefcountRepair;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.ReferencedFileLocks;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.LockPermissions;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** qemu-img check on a qcow2 file: the plain check (read-only) and the -r leaks / -r all repairs. */
public final class ImageChecker {
    private ImageChecker() {
    }

    /**
     * Checks the image at {@code path} read-only; {@code filename} is the name to report.
     *
     * @throws CheckFailedException if the check cannot finish (a snapshot table it cannot read)
     */
    public static CheckResult check(Path path, String filename) throws IOException {
        return check(path, filename, ImageLocking.DEFAULT);
    }

    /**
     * Checks the image at {@code path} read-only, held with the lock bytes {@code locking} says (qemu-img check -U:
     * {@link ImageLocking#FORCE_SHARE}), as are its data file and backing chain, which qemu-img check opens too.
     */
    public static CheckResult check(Path path, String filename, ImageLocking locking) throws IOException {
        return check(path, filename, locking, false);
    }

    /** As {@link #check(Path, String, ImageLocking)}; {@code direct}: the file opened with O_DIRECT (-T none). */
    public static CheckResult check(Path path, String filename, ImageLocking locking, boolean direct)
            throws IOException {
        try (FileStorage file = open(path, filename, true, direct, LockPermissions.forImage(locking, true));
                ReferencedFileLocks named = lockNamedFiles(path, filename, file, locking, true)) {
            return check(file, filename);
        }
    }

    private static FileStorage open(Path path, String filename, boolean readOnly, boolean direct,
            LockPermissions permissions) throws IOException {
        try {
            return FileStorage.open(path, readOnly, direct, StorageBackend.FILECHANNEL, permissions);
        } catch (ImageLockedException e) {
            throw e.withContext("Could not open '" + filename + "': ");
        }
    }

    /** The locks of the files the image names; a header too broken to name them is the check's to report. */
    private static ReferencedFileLocks lockNamedFiles(Path path, String filename, Storage file, ImageLocking locking,
            boolean readOnly) throws IOException {
        Header header;
        try {
            header = ImageMetadata.readHeader(file);
        } catch (CorruptImageException | UnsupportedFeatureException e) {
            return null;
        }
        try {
            return ReferencedFileLocks.acquire(path, header, locking, readOnly);
        } catch (ImageLockedException e) {
            throw e.withContext("Could not open '" + filename + "': ");
        } catch (UnsupportedFeatureException e) {
            return null; // a name we refuse to follow (json:, a protocol) is nothing to lock
        }
    }

    /** Checks the image in {@code file}, which stays open. */
    public static CheckResult check(Storage file, String filename) throws IOException {
        return check(CheckedFile.read(file, false), filename);
    }

    /**
     * Repairs the image at {@code path} as qemu-img check -r does, then checks it again. -r all first cuts from
     * the snapshot table what QEMU cuts; when the refcount structures need a rebuild, -r leaks fails and changes
     * nothing, -r all rebuilds them; last, -r all writes a snapshot table whose entries it changed anew.
     *
     * @throws CheckFailedException if the repair cannot finish (QEMU's "Check failed")
     */
    public static RepairOutcome repair(Path path, String filename, RepairMode mode) throws IOException {
        return repair(path, filename, mode, false);
    }

    /** As {@link #repair(Path, String, RepairMode)}; {@code direct}: the file opened with O_DIRECT (-T none). */
    public static RepairOutcome repair(Path path, String filename, RepairMode mode, boolean direct)
            throws IOException {
        return repair(path, filename, mode, direct, ImageLocking.DEFAULT);
    }

    /**
     * As {@link #repair(Path, String, RepairMode, boolean)}, the image and the files it names held as {@code
     * locking} says ({@link ImageLocking#NONE}: no lock bytes, as QEMU's file.locking=off).
     */
    public static RepairOutcome repair(Path path, String filename, RepairMode mode, boolean direct,
            ImageLocking locking) throws IOException {
        try (FileStorage file = open(path, filename, false, direct, LockPermissions.forImage(locking, false));
                ReferencedFileLocks named = lockNamedFiles(path, filename, file, locking, false)) {
            return repair(file, filename, mode);
        }
    }

    /** Repairs the image in {@code file}, which stays open, as {@link #repair(Path, String, RepairMode)} does. */
    public static RepairOutcome repair(Storage file, String filename, RepairMode mode) throws IOException {
        boolean all = mode == RepairMode.ALL;
        CheckedFile first = CheckedFile.read(file, all);
        SnapshotTableCheck snapshots = first.snapshots;
        List<String> lines = new ArrayList<>(snapshots.messages);
        if (snapshots.dropped > 0) {
            SnapshotTableRewrite.writeCount(first, snapshots.snapshots.size());
        }
        Fixed refcounts = repairRefcounts(file, first, mode, lines);
        // Dropped snapshots were fixed by the count written above; changed entries need the table written anew,
        // which allocates clusters and so waits until the refcounts are right (qcow2_check_fix_snapshot_table).
        long corruptionsFixed = refcounts.corruptions() + snapshots.dropped;
        if (all && snapshots.corruptions > 0) {
            SnapshotTableRewrite.rewrite(CheckedFile.reread(file, snapshots), snapshots, lines);
            corruptionsFixed += snapshots.corruptions;
        }
        CheckedFile repaired = CheckedFile.read(file, false);
        CheckResult r = check(repaired, filename);
        if (r.corruptions() == 0 && r.checkErrors() == 0) {
            repaired.markCleanAndConsistent();
        }
        if (corruptionsFixed == 0 && refcounts.leaks() == 0) {
            return new RepairOutcome(r, r.messages());
        }
        // qemu-img checks again after a fix and reports that result with the fixed counts.
        lines.addAll(r.messages());
        return new RepairOutcome(r.withFixed(corruptionsFixed, refcounts.leaks(), r.messages()), lines);
    }

    /**
     * The refcount part of a repair (QEMU's qcow2_check_refcounts with a fix mode). When the refcount structures
     * need a rebuild, -r leaks fails and changes nothing; -r all rebuilds them and repairs what is left.
     */
    private static Fixed repairRefcounts(Storage file, CheckedFile f, RepairMode mode, List<String> lines)
            throws IOException {
        ReferenceCount refs = f.recount();
        RefcountRepair.Outcome o = mode == RepairMode.ALL ? RefcountRepair.repairAll(refs, f.table)
                : RefcountRepair.repairLeaks(refs, f.table);
        if (!o.unrepaired().contains(RefcountRepair.NEED_REBUILD)) {
            return finishRefcounts(f, mode, refs, o, lines, true);
        }
        // QEMU's qcow2_check_refcounts rebuilds, or fails, before its check_oflag_copied: no COPIED lines here.
        lines.addAll(compared(refs, o.before()));
        if (mode != RepairMode.ALL) {
            lines.add(RefcountRepair.NEED_REBUILD);
            throw new CheckFailedException(lines, "Input/output error");
        }
        // QEMU's rebuild_refcount_structure: new structures from the recount, then repair as usual.
        RefcountRebuild.rebuild(f.file, f.header, refs);
        lines.add("Rebuilding refcount structure");
        CheckedFile rebuilt = CheckedFile.reread(file, f.snapshots);
        ReferenceCount recount = rebuilt.recount();
        Fixed after = finishRefcounts(rebuilt, mode, recount, RefcountRepair.repairAll(recount, rebuilt.table),
                lines, false);
        // The rebuild fixed the refcount mismatches and refcount-structure errors the first pass found, as QEMU
        // counts them; COPIED mismatches that merely followed from wrong refcounts are not counted.
        RefcountComparison before = o.before();
        return new Fixed(after.corruptions() + before.corruptions().size() + before.walkCorruptions(),
                after.leaks() + before.leakCount());
    }

    /** What one part of a repair fixed, in qemu-img's two counts. */
    private record Fixed(long corruptions, long leaks) {
    }

    /**
     * The rest of a refcount repair once the stored refcounts are fixed: its lines, COPIED flags, write-back. {@code
     * comparedFirst}: QEMU compared the refcounts once without a fix before this, printing every mismatch as a check
     * does, and then once more with it ("Repairing cluster ..."); after a rebuild it compares with the fix only.
     */
    private static Fixed finishRefcounts(CheckedFile f, RepairMode mode, ReferenceCount refs,
            RefcountRepair.Outcome o, List<String> lines, boolean comparedFirst) throws IOException {
        lines.addAll(comparedFirst ? compared(refs, o.before()) : refs.problems());
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
        return new Fixed(o.corruptionsFixed() + copiedFixed, o.leaksFixed());
    }

    /** The check of an open file: the snapshot table's findings first, then the refcount walk's (QEMU's order). */
    static CheckResult check(CheckedFile f, String filename) throws IOException {
        ReferenceCount refs = f.recount();
        RefcountComparison cmp = RefcountComparison.compare(refs, f.table);
        ClusterStats stats = ClusterStats.of(f);
        long cs = f.header.clusterSize();
        // qcow2_check_refcounts: res->bfi.total_clusters = size_to_clusters(virtual size).
        long total = (f.header.size() + cs - 1) / cs;
        long end = (highestInUse(refs, f.table) + 1) * cs;
        List<String> messages = new ArrayList<>(f.snapshots.messages);
        messages.addAll(ordered(refs, cmp));
        return new CheckResult(filename, "qcow2", cmp.checkErrors(), end,
                cmp.corruptionCount() + f.snapshots.corruptions, cmp.leakCount(), 0, 0, total, stats.allocated(),
                stats.fragmented(), stats.compressed(), messages);
    }

    /**
     * compare_refcounts' highest_cluster: the last cluster whose stored refcount or references are non-zero
     * (clusters whose refcount cannot be read are skipped), which sets image-end-offset.
     */
    private static long highestInUse(ReferenceCount refs, RefcountTable table) throws IOException {
        long[] highest = {0};
        // Clusters with neither a reference nor a refblock entry are not in use: skipped.
        refs.forEachCandidate(table, c -> {
            long stored;
            try {
                stored = table.get(new HostCluster(c));
            } catch (CorruptImageException e) {
                return;
            }
            if (stored != 0 || refs.references(c) != 0) {
                highest[0] = c;
            }
        });
        return highest[0];
    }

    /**
     * The findings in qemu-img's order: the walk's corruptions, then compare_refcounts' lines by cluster, then
     * check_oflag_copied's.
     */
    private static List<String> ordered(ReferenceCount refs, RefcountComparison cmp) {
        List<String> out = compared(refs, cmp);
        cmp.problems().stream().filter(s -> s.startsWith(RefcountComparison.COPIED_ERROR)).forEach(out::add);
        return out;
    }

    /**
     * The walk's corruptions, then compare_refcounts' lines without a fix: the refcounts it could not read, then
     * every mismatch by cluster (what a check prints before its COPIED lines, and a repair before its fixes).
     */
    private static List<String> compared(ReferenceCount refs, RefcountComparison cmp) {
        List<String> walk = refs.problems();
        List<String> rest = cmp.problems().subList(walk.size(), cmp.problems().size());
        List<String> out = new ArrayList<>(walk);
        rest.stream().filter(s -> s.startsWith(RefcountComparison.UNREADABLE)).forEach(out::add);
        sorted(cmp).forEach(m -> out.add(m.message()));
        return out;
    }

    private static List<Mismatch> sorted(RefcountComparison cmp) {
        List<Mismatch> all = new ArrayList<>(cmp.corruptions());
        all.addAll(cmp.leaks());
        // Not Comparator.comparingLong: the JDK's AOT cache holds this class's lambdas, not that method's.
        all.sort((a, b) -> Long.compare(a.cluster(), b.cluster()));
        return all;
    }
}
