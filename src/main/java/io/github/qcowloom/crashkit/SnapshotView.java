package io.github.qcowloom.crashkit;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Snapshot;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A snapshot's guest view, as QEMU's bdrv_snapshot_load_tmp gives it (qemu-img convert -l): the image opened
 * read-only with the snapshot's L1 table and virtual size in place of the active ones, on a copy of its bytes.
 */
final class SnapshotView {
    /** Header fields (qcow2.md §1): the virtual size, and l1_size followed by l1_table_offset. */
    private static final int SIZE = 24;
    private static final int L1_SIZE = 36;

    private SnapshotView() {
    }

    /** Opens {@code snapshot} of the image held in {@code image} read-only; the bytes are not changed. */
    static Qcow2Image open(byte[] image, Snapshot snapshot) throws IOException {
        MemoryStorage copy = new MemoryStorage(image);
        long size = snapshot.diskSize() >= 0 ? snapshot.diskSize() : ImageMetadata.readHeader(copy).size();
        copy.write(ByteBuffer.allocate(8).putLong(0, size), SIZE);
        copy.write(ByteBuffer.allocate(12).putInt(0, snapshot.l1Size()).putLong(4, snapshot.l1TableOffset()),
                L1_SIZE);
        return Qcow2Image.open(copy, null, OpenOptions.readOnlyDefaults());
    }
}
