package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.DetectZeroes;
import io.github.qcowloom.api.DiscardPolicy;
import java.io.IOException;
import java.nio.ByteBuffer;

/** Whether data is all zeroes: what convert skips, and what detect-zeroes makes a zero write. */
public final class ZeroData {
    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(64 << 10).asReadOnlyBuffer();

    private ZeroData() {
    }

    /** True if {@code b} (position to limit) holds only zeroes; compared with vectorized mismatch. */
    public static boolean isZero(ByteBuffer b) {
        return isZero(b.duplicate(), zeroes(), b.position(), b.limit());
    }

    /**
     * QEMU's detect-zeroes, as its bdrv_aligned_pwritev applies it: where {@code policy} asks and {@code src} holds
     * only zeroes, the write is made a zero write on {@code device} (one that may unmap under {@code unmap}), and
     * {@code src} is consumed as the write would have consumed it.
     *
     * @return whether it was: false leaves the write to the caller
     */
    static boolean writtenAsZeroes(DiscardPolicy policy, BlockDevice device, long offset, ByteBuffer src)
            throws IOException {
        if (policy.detectZeroes() == DetectZeroes.OFF || !isZero(src)) {
            return false;
        }
        device.writeZeroes(offset, src.remaining(), policy.detectZeroes() == DetectZeroes.UNMAP);
        src.position(src.limit());
        return true;
    }

    /** A view of zeroes for {@link #isZero(ByteBuffer, ByteBuffer, int, int)}, which moves it. */
    public static ByteBuffer zeroes() {
        return ZEROES.duplicate();
    }

    /**
     * True if bytes {@code from} to {@code to} of {@code view} are zeroes; {@code view} and {@code zeroes} (from
     * {@link #zeroes()}) are duplicates the caller owns, moved here instead of sliced, so a check allocates nothing.
     */
    public static boolean isZero(ByteBuffer view, ByteBuffer zeroes, int from, int to) {
        // Data seldom begins with eight zero bytes: one read settles most granules. (mismatch reads a first byte
        // of each side through get(int) before its vectorized loop, and with the buffers' limits set, a 4 KiB
        // granule of data cost six calls, run in the interpreter early in a copy.)
        if (to - from >= Long.BYTES && view.limit(to).getLong(from) != 0) {
            return false;
        }
        for (int i = from; i < to; i += ZEROES.capacity()) {
            int n = Math.min(ZEROES.capacity(), to - i);
            view.limit(i + n).position(i);
            zeroes.limit(n).position(0);
            if (view.mismatch(zeroes) >= 0) {
                return false;
            }
        }
        return true;
    }
}
