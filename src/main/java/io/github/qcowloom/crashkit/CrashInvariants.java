package io.github.qcowloom.crashkit;

import io.github.qcowloom.alloc.RefcountComparison;
import io.github.qcowloom.alloc.RefcountRepair;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.Snapshot;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Set;

/**
 * Checks invariants a–e of crash.md §3 on a crash state: it opens (a dirty image is repaired by a read-write
 * open; the corrupt bit is never set; only declared exceptions); the recount finds no corruption in a clean
 * image, and none and no leak after repair; metadata lies aligned inside the file; every guest sector holds a
 * legal value of the {@link GuestHistory}, so flushed data survived and no sector shows foreign bytes.
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
        Header header = ImageMetadata.readHeader(MemoryStorage.readOnlyCopy(state.image()));
        if (header.corrupt()) {
            return CrashCheck.fail(state, "a", "the corrupt bit is set");
        }
        Qcow2Image.open(MemoryStorage.readOnlyCopy(state.image()), null, OpenOptions.readOnlyDefaults()).close();
        if (!header.dirty()) {
            // A dirty image (lazy refcounts, or clusters held in a pool) may disagree until its repair on open.
            RefcountComparison raw = compare(MemoryStorage.readOnlyCopy(state.image()), false);
            if (!raw.problems().isEmpty()) {
                return CrashCheck.fail(state, "e", "metadata misplaced: " + raw.problems());
            }
            if (raw.corruptionCount() > 0) {
                return CrashCheck.fail(state, "b", raw.corruptionCount()
                        + " corruptions in an image not marked dirty: " + raw.messages());
            }
        }
        MemoryStorage repaired = new MemoryStorage(state.image());
        try (Qcow2Image image = Qcow2Image.open(repaired, null, OpenOptions.readWriteDefaults().withPool(false))) {
            CrashCheck data = checkData(state, history, image);
            if (!data.ok()) {
                return data;
            }
        }
        MemoryStorage after = new MemoryStorage(repaired.snapshot());
        if (ImageMetadata.readHeader(after).corrupt()) {
            return CrashCheck.fail(state, "a", "the corrupt bit is set after a read-write open");
        }
        RefcountComparison reopened = compare(after, true);
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
        byte[] chunk = new byte[CHUNK];
        byte[] sector = new byte[GuestHistory.SECTOR];
        for (long off = 0; off < size; off += CHUNK) {
            int len = (int) Math.min(CHUNK, size - off);
            image.read(off, ByteBuffer.wrap(chunk, 0, len));
            for (int at = 0; at < len; at += GuestHistory.SECTOR) {
                int s = (int) ((off + at) / GuestHistory.SECTOR);
                System.arraycopy(chunk, at, sector, 0, GuestHistory.SECTOR);
                int id = GuestHistory.idOf(sector, s);
                Set<Integer> legal = history.legalValues(s, state.durableFlushes());
                if (!legal.contains(id)) {
                    return CrashCheck.fail(state, id < 0 ? "c" : "d", "guest sector " + s + " (offset "
                            + (long) s * GuestHistory.SECTOR + ") holds " + GuestHistory.identify(sector, s)
                            + "; legal: " + describe(legal));
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
        TableCache cache = new TableCache(file, (int) Math.min(header.clusterSize(), 4096), 64);
        RefcountTable table = new RefcountTable(file, header, cache);
        ReferenceCount refs = ReferenceCount.compute(file, header, snapshots);
        if (!repairLeaks) {
            return RefcountComparison.compare(refs, table);
        }
        RefcountRepair.Outcome outcome = RefcountRepair.repairLeaks(refs, table);
        cache.writeBack(cache.copyDirty());
        return outcome.before();
    }

}
