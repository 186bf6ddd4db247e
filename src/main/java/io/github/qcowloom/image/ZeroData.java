package io.github.qcowloom.image;

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
