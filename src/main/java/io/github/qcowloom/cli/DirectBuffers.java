package io.github.qcowloom.cli;

import java.nio.ByteBuffer;

/** Buffers for the commands that copy or compare images. */
final class DirectBuffers {
    private DirectBuffers() {
    }

    /**
     * A direct buffer of {@code size} bytes at a 4 KiB boundary, as QEMU's qemu_blockalign, so that O_DIRECT I/O
     * reads into it and writes from it without bouncing (alignedSlice also rounds the end down, so there is room
     * for both ends).
     */
    static ByteBuffer aligned(int size) {
        int whole = (size + 4095) & -4096;
        return ByteBuffer.allocateDirect(whole + 4096).alignedSlice(4096).slice(0, size);
    }
}
