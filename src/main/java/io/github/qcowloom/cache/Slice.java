package io.github.qcowloom.cache;

import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One cached piece of an on-disk table (L2 table or refcount block): its host offset, its bytes, a version that
 * every change bumps, so that write-back knows whether a slice changed again after it was copied, and the version
 * the disk holds.
 *
 * <p>Copies of one slice can be written by two threads at once: a flush writes the copies it took under the metadata
 * lock after releasing it, while the lock's next holder may write a newer copy of the same slice (a new L2 table's
 * refcount, written and synced before the L1 entry). Whichever write came last would win on disk, so the version on
 * disk is kept monotonic: {@link #writeIfNewer} writes under this slice's write lock, and skips a copy no newer than
 * what the disk already has. Lock discipline: {@link #version} changes only under the image's metadata lock;
 * {@link #diskVersion} only under {@link #writeLock}, which is held across one write and nothing else (no other
 * lock is taken while holding it; it is taken with the metadata lock, the flush lock, or neither held).
 */
public final class Slice {
    private final long offset;
    private final byte[] data;
    private volatile long version;
    /** The newest version written to the disk (not necessarily synced); it only rises. */
    private volatile long diskVersion;
    private final ReentrantLock writeLock = new ReentrantLock();

    Slice(long offset, byte[] data) {
        this.offset = offset;
        this.data = data;
    }

    /** Host offset of the slice's first byte. */
    public long offset() {
        return offset;
    }

    /**
     * The slice's bytes; callers mutating them hold the image's metadata lock and the slice's pin
     * ({@link TableCache#pin}, or a slice just {@link TableCache#create created} and not yet written), and then call
     * {@link #markDirty} before they unpin it.
     */
    public byte[] data() {
        return data;
    }

    /** The 64-bit big-endian entry at byte offset {@code byteOffset} within the slice. */
    public long getLong(int byteOffset) {
        return Bytes.getLong(data, byteOffset);
    }

    /** Stores an entry and marks the slice dirty; the caller holds the metadata lock. */
    public void setLong(int byteOffset, long value) {
        Bytes.putLong(data, byteOffset, value);
        markDirty();
    }

    /** Records a change made through {@link #data()}; the caller holds the metadata lock. */
    public void markDirty() {
        version++;
    }

    /** True if the slice changed since the newest version the disk holds. */
    public boolean dirty() {
        return version != diskVersion;
    }

    long version() {
        return version;
    }

    /**
     * Writes {@code bytes}, this slice as it was at {@code copyVersion}, unless the disk already holds that version
     * or a newer one (no sync); the slice is then clean unless it changed since. Returns false if it skipped.
     *
     * <p>Either way, when this returns the disk holds this copy or a newer one (written, not necessarily synced),
     * so a sync that follows makes the copy's changes durable, which is all the image's ordering needs (refcounts
     * before the entries and the L1 entry that rely on them). The check is made under the write lock: a write of
     * this slice in flight on another thread is waited for, never assumed done. So a writer that must have its copy
     * on disk before its sync (allocating an L2 table) waits for a flush's write of the same slice: an older one
     * lands first and is then overwritten by the writer's; an equal one is the writer's copy. Every copy is taken
     * under the metadata lock, so a flush's copy in flight while the lock's holder writes is never newer than the
     * holder's; should one be, skipping would still be right, since it holds every change of the older copy.
     */
    boolean writeIfNewer(Storage storage, long copyVersion, byte[] bytes) throws IOException {
        writeLock.lock();
        try {
            if (copyVersion <= diskVersion) {
                return false;
            }
            storage.write(ByteBuffer.wrap(bytes), offset);
            diskVersion = copyVersion;
            return true;
        } finally {
            writeLock.unlock();
        }
    }
}
