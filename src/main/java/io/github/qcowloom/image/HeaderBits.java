package io.github.qcowloom.image;

import io.github.qcowloom.format.Features;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The header's dirty and corrupt bits (incompatible bits 0 and 1, v3 only). Dirty is set and synced before any
 * refcount that the image may leak on a crash can reach the disk, and cleared once everything is flushed; QEMU
 * (and we) recount a dirty image's references on the next read-write open. Corrupt is set when metadata met
 * during I/O contradicts itself; such an image then opens read-only only, until check -r all repairs it.
 */
final class HeaderBits {
    /** Byte offset of incompatible_features in the header. */
    private static final long INCOMPATIBLE_OFFSET = 72;

    private final Storage file;
    private final ReentrantLock lock = new ReentrantLock();
    private final int version;
    private long bits;

    HeaderBits(Storage file, int version, long incompatibleFeatures) {
        this.file = file;
        this.version = version;
        this.bits = incompatibleFeatures;
    }

    void markDirty() throws IOException {
        set(bits | Features.INCOMPAT_DIRTY);
    }

    void markClean() throws IOException {
        set(bits & ~Features.INCOMPAT_DIRTY);
    }

    /** QEMU's qcow2_mark_corrupt; v2 images have no such bit and are only failed in memory. */
    void markCorrupt() throws IOException {
        set(bits | Features.INCOMPAT_CORRUPT);
    }

    private void set(long value) throws IOException {
        lock.lock();
        try {
            if (bits == value || version < 3) {
                return;
            }
            file.write(ByteBuffer.allocate(8).putLong(0, value), INCOMPATIBLE_OFFSET);
            file.flush();
            bits = value;
        } finally {
            lock.unlock();
        }
    }
}
