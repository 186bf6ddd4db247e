package io.github.qcowloom.nbd;

import static io.github.qcowloom.nbd.Protocol.*;

import io.github.qcowloom.api.BlockDevice;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * base:allocation answers from the data itself: the device offers no allocation map, so every aligned 64 KiB run
 * that reads as zeroes is reported HOLE|ZERO and anything else as data (flags 0). That is always correct, and lets
 * clients copy sparsely. One answer looks at most {@link #MAX_SCAN} bytes; the reply may cover less than asked
 * (proto.md "NBD_CMD_BLOCK_STATUS").
 */
final class Extents {
    static final int RUN = 64 << 10;
    static final int MAX_SCAN = 8 << 20;

    private Extents() {
    }

    /** One extent of a block status reply. */
    record Extent(long length, int flags) {
    }

    /** The extents from {@code offset}: non-empty, together at most {@code length} bytes, one only if {@code one}. */
    static List<Extent> scan(BlockDevice device, long offset, long length, boolean one) throws IOException {
        long end = offset + Math.min(length, MAX_SCAN);
        ByteBuffer buf = ByteBuffer.allocate(RUN);
        List<Extent> out = new ArrayList<>();
        long pos = offset;
        while (pos < end) {
            long next = Math.min(end, (pos / RUN + 1) * RUN);
            buf.clear().limit((int) (next - pos));
            device.read(pos, buf);
            int flags = allZero(buf.flip()) ? STATE_HOLE | STATE_ZERO : 0;
            Extent last = out.isEmpty() ? null : out.get(out.size() - 1);
            if (last != null && last.flags() == flags) {
                out.set(out.size() - 1, new Extent(last.length() + next - pos, flags));
            } else if (last != null && one) {
                break;
            } else {
                out.add(new Extent(next - pos, flags));
            }
            pos = next;
        }
        return out;
    }

    private static boolean allZero(ByteBuffer b) {
        while (b.remaining() >= 8) {
            if (b.getLong() != 0) {
                return false;
            }
        }
        while (b.hasRemaining()) {
            if (b.get() != 0) {
                return false;
            }
        }
        return true;
    }
}
