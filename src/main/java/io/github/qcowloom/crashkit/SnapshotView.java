package io.github.qcowloom.crashkit;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Snapshot;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;

/**
 * A snapshot's guest view, as QEMU's bdrv_snapshot_load_tmp gives it (qemu-img convert -l): the image opened
 * read-only with the snapshot's L1 table and virtual size in place of the active ones, on a copy of its bytes.
 */
final class SnapshotView {
    /** Header fields (qcow2.md §1): the virtual size, l1_size and l1_table_offset. */
    private static final int SIZE = 24;
    private static final int L1_SIZE = 36;
    private static final int L1_TABLE_OFFSET = 40;

    private SnapshotView() {
    }

    /** Opens {@code snapshot} of the image held in {@code image} read-only; the bytes are not changed. */
    static Qcow2Image open(byte[] image, Snapshot snapshot) throws IOException {
        byte[] copy = image.clone();
        long size = snapshot.diskSize() >= 0 ? snapshot.diskSize()
                : ImageMetadata.readHeader(MemoryStorage.readOnlyCopy(image)).size();
        Bytes.putLong(copy, SIZE, size);
        Bytes.putInt(copy, L1_SIZE, snapshot.l1Size());
        Bytes.putLong(copy, L1_TABLE_OFFSET, snapshot.l1TableOffset());
        return Qcow2Image.open(MemoryStorage.readOnlyCopy(copy), null, OpenOptions.readOnlyDefaults());
    }
}
