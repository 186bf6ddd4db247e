package io.github.qcowloom.os;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * Which of an event loop's buffered writes (files opened without O_DIRECT) the loop's thread makes itself, and which
 * go through its ring. ext4 refuses buffered writes that must not wait (RWF_NOWAIT: EOPNOTSUPP), so the ring hands
 * each one to a kernel worker thread, and the two wake-ups cost more than the copy into the page cache: 4 KiB NBD
 * writes at depth 64 made 173-177k on the loop's thread against 122-128k through the ring. But a write made on the
 * loop's thread holds every other thread of the loop until it returns. So only a write that is page-aligned (an
 * unaligned one may first read its page from the disk) and short (its copy takes about a tenth of a millisecond) is
 * made there, none while the loop has a buffered write in its ring (it would wait for that one's inode lock), and
 * none for a while after one was held up by the kernel (writeback throttling, the journal, reclaim): the loop's
 * other threads must not wait for the page cache to drain. (A file system whose writes wait for a server, NFS or
 * FUSE, can still hold the loop for as long as its server takes: serve such images with {@code exec=virtual}.)
 *
 * <p>Lock discipline: none; one loop's thread only.
 */
final class BufferedWrites {
    /** The longest write made on the loop's thread. */
    static final int MAX_ON_LOOP = 256 << 10;
    private static final long AT_PAGESZ = 6;
    /** The kernel's page size (the aux vector's AT_PAGESZ): 4 KiB on amd64, up to 64 KiB on aarch64. */
    static final int PAGE_SIZE = pageSize();
    /** A write that took longer than this plus a nanosecond a byte (1 GB/s) was held up, not copying. */
    static final long HELD_UP_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    static final long MIN_BACKOFF = TimeUnit.MILLISECONDS.toNanos(100);
    static final long MAX_BACKOFF = TimeUnit.SECONDS.toNanos(10);

    /** AT_PAGESZ from /proc/self/auxv (pairs of native longs, type and value); 64 KiB, the largest, if unreadable. */
    private static int pageSize() {
        try {
            ByteBuffer auxv = ByteBuffer.wrap(Files.readAllBytes(Path.of("/proc/self/auxv")))
                    .order(ByteOrder.nativeOrder());
            while (auxv.remaining() >= 16) {
                long type = auxv.getLong();
                long value = auxv.getLong();
                if (type == AT_PAGESZ && value > 0 && Long.bitCount(value) == 1 && value <= MAX_ON_LOOP) {
                    return (int) value;
                }
            }
        } catch (IOException | RuntimeException e) {
            // as unreadable
        }
        return 64 << 10;
    }

    /** The loop's buffered writes in its ring now. */
    private int inRing;
    /** Writes go through the ring until this {@link System#nanoTime}. */
    private long ringUntil;
    /** The last back-off; it doubles while hold-ups come within {@link #MAX_BACKOFF} of the previous one's end. */
    private long backoff;

    BufferedWrites(long now) {
        ringUntil = now - MAX_BACKOFF;
    }

    /** Whether the write of {@code length} bytes at {@code offset}, starting at {@code now}, is made on the loop. */
    boolean onLoop(long offset, int length, long now) {
        return ((offset | length) & (PAGE_SIZE - 1)) == 0 && length <= MAX_ON_LOOP && inRing == 0
                && now - ringUntil >= 0;
    }

    /** A buffered write goes into the ring; {@link #backFromRing} when it has completed. */
    void toRing() {
        inRing++;
    }

    void backFromRing() {
        inRing--;
    }

    /**
     * A write made on the loop took {@code took} nanoseconds from {@code start}; true if it was held up, in which
     * case the next writes go through the ring for {@link #backoff()}.
     */
    boolean took(long start, long took, int length) {
        if (took <= HELD_UP_NANOS + length) {
            return false;
        }
        boolean again = start - ringUntil < MAX_BACKOFF;
        backoff = again ? Math.min(backoff * 2, MAX_BACKOFF) : MIN_BACKOFF;
        ringUntil = start + took + backoff;
        return true;
    }

    /** How long writes now go through the ring after the last hold-up. */
    long backoff() {
        return backoff;
    }
}
