package io.github.qcowloom.storage;

import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Zeroes written into buffers in bulk: what a read returns past the end of a file, for a zero or unallocated
 * cluster without a backing file, or to pad an O_DIRECT block. A byte-at-a-time loop over a 64 KiB window past
 * the end of a file costs 65536 iterations.
 */
public final class Zeroes {
    private static final byte[] BLOCK = new byte[8192];

    private Zeroes() {
    }

    /** Puts {@code n} zero bytes at {@code dst}'s position, advancing it. */
    public static void put(ByteBuffer dst, int n) {
        for (int left = n; left > 0; left -= BLOCK.length) {
            dst.put(BLOCK, 0, Math.min(left, BLOCK.length));
        }
    }

    /** Zeroes {@code dst} from its position to its limit, advancing the position to the limit. */
    public static void fill(ByteBuffer dst) {
        if (dst.hasArray()) {
            int from = dst.arrayOffset() + dst.position();
            Arrays.fill(dst.array(), from, from + dst.remaining(), (byte) 0);
            dst.position(dst.limit());
            return;
        }
        put(dst, dst.remaining());
    }
}
