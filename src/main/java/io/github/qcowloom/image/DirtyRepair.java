package io.github.qcowloom.image;

import io.github.qcowloom.alloc.CopiedFlags;
import io.github.qcowloom.alloc.RefcountComparison;
import io.github.qcowloom.alloc.RefcountRepair;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * QEMU's repair of a dirty image on read-write open (qcow2_do_open runs qcow2_check with BDRV_FIX_ERRORS |
 * BDRV_FIX_LEAKS): a process that died with the dirty bit set (our pool's clusters, lazy refcounts, a table edit)
 * may have left refcounts above or below the references and COPIED flags that disagree with the refcounts. The
 * references are recounted, the refcounts set to them, the COPIED flags of the active tree set from the repaired
 * refcounts, and only then is the image marked clean; nothing else has read the tables yet.
 */
final class DirtyRepair {
    private static final Logger LOG = LoggerFactory.getLogger(DirtyRepair.class);

    private DirtyRepair() {
    }

    /**
     * Repairs the dirty image in {@code file} and returns its header, now clean. A repair that leaves anything
     * unrepaired fails ("Could not repair dirty image") and leaves the image dirty; one whose recount would need
     * more than {@code recountMemory} bytes fails with ImageTooLargeException and changes nothing.
     */
    static Header run(Storage file, Header header, List<Snapshot> snapshots, long recountMemory) throws IOException {
        TableCache refblockCache = RefcountTable.offlineCache(file, header, 64);
        RefcountTable refcounts = new RefcountTable(file, header, refblockCache);
        long tableSize = snapshots.isEmpty() ? 0 : SnapshotTable.encodedLength(snapshots);
        ReferenceCount refs = ReferenceCount.compute(file, header, snapshots, tableSize, recountMemory);
        RefcountRepair.Outcome outcome = RefcountRepair.repairAll(refs, refcounts);
        if (outcome.unrepaired().contains(RefcountRepair.NEED_REBUILD)) {
            throw unrepaired(outcome.unrepaired());
        }
        refblockCache.writeBack(refblockCache.copyDirty());
        // 1. The repaired refcounts are durable before any COPIED flag is set from them.
        file.flush();
        // 2. The flags (synced if any changed), before the header says the image is clean.
        List<String> repaired = new ArrayList<>();
        int flagsFixed = CopiedFlags.repair(file, header, refcounts, repaired);
        repaired.forEach(line -> LOG.debug("Dirty image: {}", line));
        List<String> left = flagsFixed == 0 ? outcome.unrepaired()
                : RefcountComparison.compare(ReferenceCount.compute(file, header, snapshots, tableSize, recountMemory),
                        refcounts).messages();
        if (!left.isEmpty()) {
            throw unrepaired(left);
        }
        // 3. Clean.
        new HeaderBits(file, header.version(), header.incompatibleFeatures()).markClean();
        return header.withFeatures(header.incompatibleFeatures() & ~Features.INCOMPAT_DIRTY,
                header.compatibleFeatures(), header.autoclearFeatures());
    }

    private static CorruptImageException unrepaired(List<String> problems) {
        return new CorruptImageException("Could not repair dirty image: " + String.join("; ", problems));
    }
}
