package io.github.qcowloom.image;

import io.github.qcowloom.format.Features;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The header's dirty bit (incompatible bit 0, v3 only). Set and synced before any refcount that the image may
 * leak on a crash can reach the disk; cleared once everything is flushed. QEMU (and we) recount a dirty image's
 * references on the next read-write open.
 */
final class DirtyBit {
    /** Byte offset of incompatible_features in the header. */
    private static final long INCOMPATIBLE_OFFSET = 72;

    private final Storage file;
    private final ReentrantLock lock = new ReentrantLock();
    private final long baseFeatures;
    private boolean dirty;

    DirtyBit(Storage file, long incompatibleFeatures) {
        this.file = file;
        this.baseFeatures = incompatibleFeatures & ~Features.INCOMPAT_DIRTY;
        this.dirty = (incompatibleFeatures & Features.INCOMPAT_DIRTY) != 0;
    }

    void markDirty() throws IOException {
        set(true);
    }

    void markClean() throws IOException {
        set(false);
    }

    boolean isDirty() {
        lock.lock();
        try {
            return dirty;
        } finally {
            lock.unlock();
        }
    }

    private void set(boolean value) throws IOException {
        lock.lock();
        try {
            if (dirty == value) {
                return;
            }
            long bits = value ? baseFeatures | Features.INCOMPAT_DIRTY : baseFeatures;
            file.write(ByteBuffer.allocate(8).putLong(0, bits), INCOMPATIBLE_OFFSET);
            file.flush();
            dirty = value;
        } finally {
            lock.unlock();
        }
    }
}
