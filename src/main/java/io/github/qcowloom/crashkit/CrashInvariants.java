package io.github.qcowloom.crashkit;

import io.github.qcowloom.alloc.RefcountComparison;
import io.github.qcowloom.alloc.RefcountRepair;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Set;

/**
 * Checks invariants a–g of crash.md §3 on a crash state: it opens (a dirty image is repaired by a read-write
 * open; the corrupt bit is never set; only declared exceptions); no refcount is below its references and no COPIED
 * flag is on a shared cluster (unless lazy refcounts leave refcounts to the repair); the recount finds no
 * corruption in a clean image, and none and no leak after repair; metadata lies aligned inside the file; every
 * guest sector holds a legal value of the {@link GuestHistory}, so flushed data survived and no sector shows
 * foreign bytes; and the snapshots are those the history allows, each holding exactly its contents at creation.
 */
public final class CrashInvariants {
    private static final int CHUNK = 64 * 1024;

    private CrashInvariants() {
    }

    /** Checks {@code state} against what the workload recorded in {@code history}. */
    public static CrashCheck check(CrashState state, GuestHistory history) {
        try {
            return checkOrThrow(state, history);
        } catch (IOException e) {
            return CrashCheck.fail(state, "a", "the image does not open or read: " + e);
        } catch (RuntimeException e) {
            return CrashCheck.fail(state, "a", "undeclared exception " + e);
        }
    }

    private static CrashCheck checkOrThrow(CrashState state, GuestHistory history) throws IOException {
        MemoryStorage asLeft = MemoryStorage.readOnlyCopy(state.image());
        Header header = ImageMetadata.readHeader(asLeft);
        if (header.corrupt()) {
            return CrashCheck.fail(state, "a", "the corrupt bit is set");
        }
        CrashCheck raw = checkRawMetadata(state, asLeft, header);
        if (!raw.ok()) {
            return raw;
        }
        Qcow2Image.open(asLeft, null, OpenOptions.readOnlyDefaults()).close();
        MemoryStorage repaired = new MemoryStorage(state.image());
        List<Snapshot> listed;
        try (Qcow2Image image = Qcow2Image.open(repaired, null, OpenOptions.readWriteDefaults().withPool(false))) {
            CrashCheck data = checkData(state, history, image);
            if (!data.ok()) {
                return data;
            }
            listed = image.snapshots();
        }
        MemoryStorage after = new MemoryStorage(repaired.snapshot());
        if (ImageMetadata.readHeader(after).corrupt()) {
            return CrashCheck.fail(state, "a", "the corrupt bit is set after a read-write open");
        }
        RefcountComparison reopened = compare(after, true);
        if (reopened.copiedMismatches() > 0) {
            return CrashCheck.fail(state, "b", "COPIED flags disagree with the refcounts after the read-write open's"
                    + " repair: " + reopened.problems());
        }
        if (!reopened.problems().isEmpty()) {
            return CrashCheck.fail(state, "e", "metadata misplaced after the read-write open: "
                    + reopened.problems());
        }
        if (reopened.corruptionCount() > 0) {
            return CrashCheck.fail(state, "b", "corruptions after the read-write open's repair: "
                    + reopened.messages());
        }
        RefcountComparison clean = compare(after, false);
        if (!clean.clean()) {
            return CrashCheck.fail(state, "b", "not clean after repairing leaks: " + clean.messages());
        }
        return listed.isEmpty() && history.snapshots().isEmpty() ? CrashCheck.OK
                : checkSnapshots(state, history, after.snapshot(), listed);
    }

    /**
     * The metadata as the crash left it. A clean image must check clean. A dirty one (lazy refcounts, clusters in a
     * pool, a table edit under way) may leak and may have COPIED flags missing or following a leaked refcount, which
     * the repair on open fixes; but unless lazy refcounts defer refcounts to that repair, no refcount may be below its
     * references, and no COPIED flag may be on a cluster another tree shares.
     */
    private static CrashCheck checkRawMetadata(CrashState state, Storage file, Header header) throws IOException {
        ReferenceCount refs = ReferenceCount.compute(file, header, ImageMetadata.readSnapshots(file, header));
        RefcountComparison raw = RefcountComparison.compare(refs, refcountTable(file, header));
        if (!refs.problems().isEmpty()) {
            return CrashCheck.fail(state, "e", "metadata misplaced: " + refs.problems());
        }
        if (!header.dirty() && (raw.corruptionCount() > 0 || raw.checkErrors() > 0)) {
            return CrashCheck.fail(state, "b", raw.corruptionCount() + " corruptions in an image not marked dirty: "
                    + raw.messages());
        }
        if (!header.lazyRefcounts() && !raw.corruptions().isEmpty()) {
            return CrashCheck.fail(state, "e", "a refcount below its references (a reference reached the disk before"
                    + " its refcount): " + raw.corruptions().stream().map(RefcountComparison.Mismatch::message)
                    .toList());
        }
        List<String> shared = refs.copiedOnShared();
        if (!shared.isEmpty()) {
            return CrashCheck.fail(state, "e", "COPIED on shared clusters (a write in place would change a snapshot): "
                    + shared);
        }
        return CrashCheck.OK;
    }

    /**
     * Invariants c and d: each sector holds one of its legal values; g: the virtual size is one the workload set,
     * and what a resize added past the modelled sectors reads as zeroes.
     */
    private static CrashCheck checkData(CrashState state, GuestHistory history, Qcow2Image image)
            throws IOException {
        if (!history.sizes().contains(image.size())) {
            return CrashCheck.fail(state, "g", "virtual size " + image.size() + " is none of the sizes the workload"
                    + " set: " + history.sizes());
        }
        long modelled = (long) history.sectors() * GuestHistory.SECTOR;
        for (long off = modelled; off < image.size(); off += CHUNK) {
            byte[] grown = new byte[(int) Math.min(CHUNK, image.size() - off)];
            image.read(off, ByteBuffer.wrap(grown));
            for (int i = 0; i < grown.length; i++) {
                if (grown[i] != 0) {
                    return CrashCheck.fail(state, "g", "the grown area is not zero at offset " + (off + i));
                }
            }
        }
        long size = Math.min(image.size(), modelled);
        // A crash during an apply leaves the old disk or the snapshot's, not a mix of the two.
        GuestHistory.ApplyRecord apply = history.applyInFlight(state.durableFlushes());
        boolean allOld = true;
        boolean allApplied = true;
        byte[] chunk = new byte[CHUNK];
        byte[] sector = new byte[GuestHistory.SECTOR];
        for (long off = 0; off < size; off += CHUNK) {
            int len = (int) Math.min(CHUNK, size - off);
            image.read(off, ByteBuffer.wrap(chunk, 0, len));
            for (int at = 0; at < len; at += GuestHistory.SECTOR) {
                int s = (int) ((off + at) / GuestHistory.SECTOR);
                System.arraycopy(chunk, at, sector, 0, GuestHistory.SECTOR);
                int id = GuestHistory.idOf(sector, s);
                if (!history.isLegal(s, state.durableFlushes(), history.entryCount(s), id)) {
                    return CrashCheck.fail(state, id < 0 ? "c" : "d", "guest sector " + s + " (offset "
                            + (long) s * GuestHistory.SECTOR + ") holds " + GuestHistory.identify(sector, s)
                            + "; legal: " + describe(history.legalValues(s, state.durableFlushes())));
                }
                if (apply != null) {
                    allApplied &= id == apply.applied()[s];
                    allOld &= history.isLegal(s, state.durableFlushes(), apply.entriesBefore()[s], id);
                }
            }
        }
        if (apply != null && !allOld && !allApplied) {
            return CrashCheck.fail(state, "f", "a crash while snapshot '" + apply.name() + "' was applied left a disk"
                    + " that is neither the old one nor the snapshot's");
        }
        return CrashCheck.OK;
    }

    /**
     * Invariant f: every snapshot the image lists was created by the workload, is not durably deleted and reads
     * exactly as the disk read when it was created (its size too); every snapshot created durably and not being
     * deleted is listed.
     */
    private static CrashCheck checkSnapshots(CrashState state, GuestHistory history, byte[] image,
            List<Snapshot> listed) throws IOException {
        long durable = state.durableFlushes();
        Set<String> names = new java.util.HashSet<>();
        for (Snapshot s : listed) {
            GuestHistory.SnapshotRecord r = history.snapshot(s.name());
            String listing = "the image lists snapshot '" + s.name() + "' (id " + s.id() + ")";
            if (!names.add(s.name())) {
                return CrashCheck.fail(state, "f", listing + " twice");
            }
            if (r == null) {
                return CrashCheck.fail(state, "f", listing + ", which no create made");
            }
            if (!r.mayExist(durable)) {
                return CrashCheck.fail(state, "f", listing + ", which " + (r.deleted() && durable >= r.deletedAfter()
                        ? "was deleted durably" : "had not been created yet"));
            }
            CrashCheck contents = checkSnapshotContents(state, image, s, r);
            if (!contents.ok()) {
                return contents;
            }
        }
        for (GuestHistory.SnapshotRecord r : history.snapshots()) {
            if (r.mustExist(durable) && !names.contains(r.name())) {
                return CrashCheck.fail(state, "f", "snapshot '" + r.name() + "' was created durably"
                        + (r.deleted() ? " and its delete had not begun" : "") + ", but the image does not list it");
            }
        }
        return CrashCheck.OK;
    }

    private static CrashCheck checkSnapshotContents(CrashState state, byte[] image, Snapshot s,
            GuestHistory.SnapshotRecord r) throws IOException {
        try (Qcow2Image view = SnapshotView.open(image, s)) {
            if (view.size() != r.size()) {
                return CrashCheck.fail(state, "f", "snapshot '" + s.name() + "' has virtual size " + view.size()
                        + ", not its size at creation " + r.size());
            }
            long modelled = (long) r.contents().length * GuestHistory.SECTOR;
            byte[] chunk = new byte[CHUNK];
            byte[] sector = new byte[GuestHistory.SECTOR];
            for (long off = 0; off < view.size(); off += CHUNK) {
                int len = (int) Math.min(CHUNK, view.size() - off);
                view.read(off, ByteBuffer.wrap(chunk, 0, len));
                for (int at = 0; at < len; at += GuestHistory.SECTOR) {
                    long sec = (off + at) / GuestHistory.SECTOR;
                    System.arraycopy(chunk, at, sector, 0, GuestHistory.SECTOR);
                    int expected = off + at < modelled ? r.contents()[(int) sec] : 0;
                    if (GuestHistory.idOf(sector, sec) != expected) {
                        return CrashCheck.fail(state, "f", "snapshot '" + s.name() + "' sector " + sec + " holds "
                                + GuestHistory.identify(sector, sec) + ", not its value at creation "
                                + describe(Set.of(expected)));
                    }
                }
            }
        }
        return CrashCheck.OK;
    }

    private static String describe(Set<Integer> legal) {
        return legal.stream().map(id -> id == 0 ? "zeroes" : "write #" + id).toList().toString();
    }

    /** The recount against the stored refcounts; with {@code repairLeaks}, after lowering leaked refcounts. */
    private static RefcountComparison compare(Storage file, boolean repairLeaks) throws IOException {
        Header header = ImageMetadata.readHeader(file);
        List<Snapshot> snapshots = ImageMetadata.readSnapshots(file, header);
        TableCache cache = refcountCache(file, header);
        RefcountTable table = new RefcountTable(file, header, cache);
        ReferenceCount refs = ReferenceCount.compute(file, header, snapshots);
        if (!repairLeaks) {
            return RefcountComparison.compare(refs, table);
        }
        RefcountRepair.Outcome outcome = RefcountRepair.repairLeaks(refs, table);
        cache.writeBack(cache.copyDirty());
        return outcome.before();
    }

    private static RefcountTable refcountTable(Storage file, Header header) throws IOException {
        return new RefcountTable(file, header, refcountCache(file, header));
    }

    private static TableCache refcountCache(Storage file, Header header) {
        return RefcountTable.offlineCache(file, header, 64);
    }
}
