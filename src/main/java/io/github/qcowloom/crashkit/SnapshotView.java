package io.github.qcowloom.crashkit;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;

/**
 * A snapshot's guest view, as QEMU's bdrv_snapshot_load_tmp gives it (qemu-img convert -l): the image opened
 * read-only with the snapshot's L1 table and virtual size in place of the active ones, on a copy of its bytes.
 */
final class SnapshotView {
    private SnapshotView() {
    }

    /** Opens {@code snapshot} of the image held in {@code image} read-only; the bytes are not changed. */
    static Qcow2Image open(byte[] image, Snapshot snapshot) throws IOException {
        MemoryStorage copy = new MemoryStorage(image);
        long size = snapshot.diskSizeOr(ImageMetadata.readHeader(copy).size());
        copy.write(HeaderField.SIZE.encode(size), HeaderField.SIZE.offset());
        copy.write(HeaderField.L1_SIZE.encode(snapshot.l1Size(), snapshot.l1TableOffset()),
                HeaderField.L1_SIZE.offset());
        return Qcow2Image.open(copy, null, OpenOptions.readOnlyDefaults());
    }
}
