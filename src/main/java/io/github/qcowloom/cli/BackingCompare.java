package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.image.ZeroData;
import java.io.IOException;
import java.nio.ByteBuffer;

/** Whether a chunk equals what a backing file shows at the same offset (zeroes past its end, as QEMU reads). */
final class BackingCompare {
    private BackingCompare() {
    }

    /**
     * True if a new image shows {@code chunk} at {@code offset} without writing it: it is all zeroes and there is no
     * backing file ({@code backing} null), or it equals what the backing file shows.
     */
    static boolean needsNoWrite(BlockDevice backing, long offset, ByteBuffer chunk) throws IOException {
        return backing == null ? ZeroData.isZero(chunk) : same(backing, offset, chunk);
    }

    static boolean same(BlockDevice backing, long offset, ByteBuffer chunk) throws IOException {
        int n = chunk.remaining();
        int inside = (int) Math.max(0, Math.min(n, backing.size() - offset));
        ByteBuffer theirs = ByteBuffer.allocate(inside);
        if (inside > 0) {
            backing.read(offset, theirs);
            theirs.flip();
        }
        ByteBuffer head = chunk.slice(chunk.position(), inside);
        ByteBuffer tail = chunk.slice(chunk.position() + inside, n - inside);
        return head.equals(theirs) && ZeroData.isZero(tail);
    }
}
