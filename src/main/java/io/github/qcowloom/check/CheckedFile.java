package io.github.qcowloom.check;

import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * An image file as the check sees it: header (the snapshot table pointer left to the check), snapshot table as
 * the check reads it, and a refcount table over a cache. Each pass of a repair reads a fresh one from the same
 * storage, which the caller keeps open.
 */
final class CheckedFile {
    final Storage file;
    final Header header;
    final SnapshotTableCheck snapshots;
    final TableCache cache;
    final RefcountTable table;

    private CheckedFile(Storage file, SnapshotTableCheck known, boolean repairSnapshots) throws IOException {
        this.file = file;
        this.header = ImageMetadata.readHeaderForCheck(file);
        this.snapshots = known != null ? known : SnapshotTableCheck.read(file, header, repairSnapshots);
        this.cache = RefcountTable.offlineCache(file, header, 64);
        this.table = new RefcountTable(file, header, cache);
    }

    /** Reads the image in {@code file}, its snapshot table the repairing way with {@code repairSnapshots} (-r all). */
    static CheckedFile read(Storage file, boolean repairSnapshots) throws IOException {
        return new CheckedFile(file, null, repairSnapshots);
    }

    /**
     * Reads the image again in the same repair, with the snapshot table as that repair read it (reading it again
     * would report and count its damage twice).
     */
    static CheckedFile reread(Storage file, SnapshotTableCheck snapshots) throws IOException {
        return new CheckedFile(file, snapshots, false);
    }

    /** The reference recount of this file, with the snapshot table as read. */
    ReferenceCount recount() throws IOException {
        return ReferenceCount.compute(file, header, snapshots.snapshots, snapshots.size);
    }

    byte[] read(long offset, int length) throws IOException {
        byte[] b = new byte[length];
        file.readFully(ByteBuffer.wrap(b), offset);
        return b;
    }

    /** Writes the dirty refblock slices back and syncs. */
    void writeBack() throws IOException {
        cache.writeBack(cache.copyDirty());
        file.flush();
    }

    /**
     * Clears the dirty and corrupt bits (incompatible features bits 0 and 1) and syncs, as QEMU's
     * qcow2_mark_clean and qcow2_mark_consistent do after a successful repair. Version 2 has no such bits.
     */
    void markCleanAndConsistent() throws IOException {
        long features = header.incompatibleFeatures();
        if (header.version() >= 3 && (features & 3) != 0) {
            HeaderField field = HeaderField.INCOMPATIBLE_FEATURES;
            file.write(field.encode(features & ~3L), field.offset());
            file.flush();
        }
    }
}
