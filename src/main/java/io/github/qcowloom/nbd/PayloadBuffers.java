package io.github.qcowloom.nbd;

import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;

/**
 * The server's READ and WRITE payload buffers: direct and 4 KiB-aligned, so that the image reads into them and the
 * socket sends from them with no copy through the JDK's temporary direct buffers (which a virtual thread does not
 * keep, so a heap buffer costs a native allocation and a copy on each side), and an O_DIRECT image needs no bounce
 * buffer. Reused by power-of-two size, from 4 KiB to 32 MiB: at most {@link #IDLE_BYTES_PER_SIZE} idle bytes of
 * each size up to 2 MiB are kept (with 4 KiB of alignment slack a buffer), and one buffer of each larger size, 80 MiB
 * in all at most, so the memory kept beyond the requests in flight (which each connection's {@link ByteBudget}
 * bounds) is fixed. A dropped buffer's memory comes back only with the GC, which a nearly empty heap seldom runs: a
 * client reading 32 MiB at a time, each in a new buffer, took the server to 3.3 GiB in 100 reads.
 *
 * <p>Lock discipline: none; each size's idle queue is its own.
 */
final class PayloadBuffers {
    static final int ALIGNMENT = 4096;
    private static final int MIN_SHIFT = 12;
    private static final int MAX_SHIFT = 25; // Protocol.MAX_PAYLOAD, 32 MiB
    private static final int IDLE_BYTES_PER_SIZE = 2 << 20;
    private static final int KEPT_MAX_SHIFT = MAX_SHIFT;

    private final ArrayBlockingQueue<ByteBuffer>[] idle;

    @SuppressWarnings("unchecked")
    PayloadBuffers() {
        idle = new ArrayBlockingQueue[KEPT_MAX_SHIFT - MIN_SHIFT + 1];
        for (int shift = MIN_SHIFT; shift <= KEPT_MAX_SHIFT; shift++) {
            idle[shift - MIN_SHIFT] = new ArrayBlockingQueue<>(Math.max(1, IDLE_BYTES_PER_SIZE >> shift));
        }
    }

    /** The bytes {@link #take}{@code (length)} holds: what a connection's budget must count. */
    static int capacityFor(long length) {
        return 1 << shift(length);
    }

    private static int shift(long length) {
        return Math.max(MIN_SHIFT, 64 - Long.numberOfLeadingZeros(Math.max(1, length) - 1));
    }

    /** A buffer with position 0 and limit {@code length} (at most 32 MiB). */
    ByteBuffer take(int length) {
        int shift = shift(length);
        ByteBuffer b = shift <= KEPT_MAX_SHIFT ? idle[shift - MIN_SHIFT].poll() : null;
        if (b == null) {
            int size = 1 << shift;
            b = ByteBuffer.allocateDirect(size + ALIGNMENT).alignedSlice(ALIGNMENT).slice(0, size);
        }
        return b.clear().limit(length);
    }

    /** Returns a buffer from {@link #take}; dropped (left to the GC) when enough of its size are idle. */
    void give(ByteBuffer b) {
        int shift = Integer.numberOfTrailingZeros(b.capacity());
        if (shift > KEPT_MAX_SHIFT || Integer.bitCount(b.capacity()) != 1 || shift < MIN_SHIFT) {
            return;
        }
        idle[shift - MIN_SHIFT].offer(b);
    }
}
