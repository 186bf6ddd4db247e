package io.github.qcowloom.image;

import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongUnaryOperator;
import java.util.function.UnaryOperator;

/**
 * The header's dirty and corrupt bits (incompatible bits 0 and 1, v3 only). Dirty is set and synced before any
 * refcount that the image may leak on a crash can reach the disk, and cleared once everything is flushed; QEMU
 * (and we) recount a dirty image's references on the next read-write open. Corrupt is set when metadata met
 * during I/O contradicts itself; such an image then opens read-only only, until check -r all repairs it.
 *
 * <p>Lock discipline: {@link #lock} guards {@link #bits} and the header's incompatible-features word; each
 * transition reads, changes and writes (and syncs) the word under it, so that concurrent transitions never undo one
 * another (a clean never drops a corrupt bit set meanwhile). A rewrite of the whole header ({@link #rewriteHeader})
 * holds it too, so that it writes the word as it is. It comes after the metadata lock in the image's lock
 * order ({@link MetadataWriter}) and takes nothing else; it may be taken under the metadata lock, under a request's
 * image and cluster locks, or under none.
 */
final class HeaderBits {
    private final Storage file;
    private final ReentrantLock lock = new ReentrantLock();
    private final int version;
    /** The incompatible features as they are on disk; guarded by {@link #lock}. */
    private long bits;

    HeaderBits(Storage file, int version, long incompatibleFeatures) {
        this.file = file;
        this.version = version;
        this.bits = incompatibleFeatures;
    }

    void markDirty() throws IOException {
        update(b -> b | Features.INCOMPAT_DIRTY);
    }

    void markClean() throws IOException {
        update(b -> b & ~Features.INCOMPAT_DIRTY);
    }

    /** QEMU's qcow2_mark_corrupt; v2 images have no such bit and are only failed in memory. */
    void markCorrupt() throws IOException {
        update(b -> b | Features.INCOMPAT_CORRUPT);
    }

    /**
     * Reads the header from the file, applies {@code change} and writes the result over cluster 0 in QEMU's layout
     * ({@link HeaderRewrite#cluster0}), with the incompatible bits as they are, then syncs: QEMU's
     * qcow2_update_header, for a header extension that changes (the bitmap directory's place). Read from the file
     * rather than taken from memory, so that every field another step wrote in place is kept. The other fields'
     * writers (TableAllocator's writeHeaderField) hold the metadata lock, which the caller holds too: this lock
     * guards only the incompatible bits.
     *
     * @throws io.github.qcowloom.api.CorruptImageException if the result does not fit in the first cluster, having
     *     written nothing
     */
    void rewriteHeader(UnaryOperator<Header> change) throws IOException {
        lock.lock();
        try {
            Header h = change.apply(ImageMetadata.readHeader(file));
            file.writeDurably(HeaderRewrite.cluster0(h.withFeatures(bits, h.compatibleFeatures(),
                    h.autoclearFeatures())), 0);
        } finally {
            lock.unlock();
        }
    }

    /** Applies {@code change} to the bits as they are, under the lock; writes and syncs them if they changed. */
    private void update(LongUnaryOperator change) throws IOException {
        lock.lock();
        try {
            long value = change.applyAsLong(bits);
            if (bits == value || version < 3) {
                return;
            }
            HeaderField field = HeaderField.INCOMPATIBLE_FEATURES;
            // Durable before the caller goes on: a dirty bit before the refcounts it covers can reach the disk.
            file.writeDurably(field.encode(value), field.offset());
            bits = value;
        } finally {
            lock.unlock();
        }
    }
}
