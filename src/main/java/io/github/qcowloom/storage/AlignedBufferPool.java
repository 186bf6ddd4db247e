package io.github.qcowloom.storage;

import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;

/**
 * A small pool of equally sized, aligned direct buffers for O_DIRECT bounce copies. A pool rather than a
 * thread-local: there may be thousands of virtual threads, and each would pin its own native buffer.
 */
final class AlignedBufferPool {
    private final int alignment;
    private final int bufferSize;
    private final ArrayBlockingQueue<ByteBuffer> free;

    /** Buffers of {@code bufferSize} bytes (a multiple of {@code alignment}); keeps at most {@code maxIdle}. */
    AlignedBufferPool(int alignment, int bufferSize, int maxIdle) {
        if (bufferSize <= 0 || bufferSize % alignment != 0) {
            throw new IllegalArgumentException("buffer size " + bufferSize + " is not a multiple of " + alignment);
        }
        this.alignment = alignment;
        this.bufferSize = bufferSize;
        this.free = new ArrayBlockingQueue<>(maxIdle);
    }

    /** Size of every buffer. */
    int bufferSize() {
        return bufferSize;
    }

    /** A cleared buffer of exactly {@link #bufferSize()} bytes whose address is aligned. */
    ByteBuffer take() {
        ByteBuffer buffer = free.poll();
        if (buffer == null) {
            // Slice to the exact size: clear() on the aligned slice alone would restore the over-allocation.
            return ByteBuffer.allocateDirect(bufferSize + alignment).alignedSlice(alignment).slice(0, bufferSize);
        }
        return buffer.clear();
    }

    /** Returns a buffer from {@link #take()}; dropped (left to the GC) when enough are idle. */
    void give(ByteBuffer buffer) {
        free.offer(buffer);
    }
}
