package io.github.qcowloom.nbd;

import static io.github.qcowloom.nbd.Protocol.*;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.function.ToIntFunction;

/**
 * base:allocation from the device's block status, as QEMU's NBD server answers it: NBD_STATE_HOLE where no layer
 * stores data (zero clusters, unallocated ranges), NBD_STATE_ZERO where the range reads as zeroes. Neighbouring
 * runs with the same flags are one extent. qemu:allocation-depth from the same block status: each run's layer in
 * the backing chain. And an exported bitmap's qemu:dirty-bitmap context: STATE_DIRTY where its bits are set. A reply
 * holds at most {@link #MAX_EXTENTS} extents, so it may cover less than asked (proto.md
 * "NBD_CMD_BLOCK_STATUS").
 */
final class Extents {
    /** QEMU's NBD_MAX_BLOCK_STATUS_EXTENTS: 1 MiB of 8-byte extent descriptors. */
    static final int MAX_EXTENTS = (1 << 20) / 8;

    private Extents() {
    }

    /** One extent of a block status reply. */
    record Extent(long length, int flags) {
    }

    /**
     * The base:allocation extents from {@code offset}: non-empty, together at most {@code length} bytes, one only if
     * {@code one}.
     */
    static List<Extent> of(BlockDevice device, long offset, long length, boolean one) throws IOException {
        return of(device, offset, length, one, s -> (s.data() ? 0 : STATE_HOLE) | (s.zero() ? STATE_ZERO : 0));
    }

    /**
     * The qemu:allocation-depth extents from {@code offset}, as {@link #of(BlockDevice, long, long, boolean)} gives:
     * {@link BlockStatus#allocationDepth()} of each.
     */
    static List<Extent> depths(BlockDevice device, long offset, long length, boolean one) throws IOException {
        return of(device, offset, length, one, BlockStatus::allocationDepth);
    }

    /**
     * The whole of {@code [offset, offset + length)} in runs that read as zeroes ({@link #STATE_ZERO}) or not, with no
     * bound on their number: a structured READ's hole and data chunks, as qemu-nbd's nbd_co_send_sparse_read makes
     * them.
     */
    static List<Extent> zeroRuns(BlockDevice device, long offset, long length) throws IOException {
        return of(device, offset, length, false, Integer.MAX_VALUE, s -> s.zero() ? STATE_ZERO : 0);
    }

    private static List<Extent> of(BlockDevice device, long offset, long length, boolean one,
            ToIntFunction<BlockStatus> flagsOf) throws IOException {
        return of(device, offset, length, one, MAX_EXTENTS, flagsOf);
    }

    private static List<Extent> of(BlockDevice device, long offset, long length, boolean one, int max,
            ToIntFunction<BlockStatus> flagsOf) throws IOException {
        long end = offset + length;
        List<Extent> out = new ArrayList<>();
        long pos = offset;
        while (pos < end) {
            BlockStatus status = device.blockStatus(pos, end - pos);
            int flags = flagsOf.applyAsInt(status);
            Extent last = out.isEmpty() ? null : out.get(out.size() - 1);
            if (last != null && last.flags() == flags) {
                out.set(out.size() - 1, new Extent(last.length() + status.length(), flags));
            } else if (last != null && (one || out.size() == max)) {
                break;
            } else {
                out.add(new Extent(status.length(), flags));
            }
            pos += status.length();
        }
        return out;
    }

    /** The extents of a dirty bitmap from {@code offset}, as {@link #of(BlockDevice, long, long, boolean)} gives. */
    static List<Extent> of(ExportedBitmap.Runs runs, long offset, long length, boolean one) throws IOException {
        long end = offset + length;
        List<Extent> out = new ArrayList<>();
        for (long pos = offset; pos < end && out.size() < MAX_EXTENTS && !(one && !out.isEmpty()); ) {
            ExportedBitmap.Run run = runs.run(pos, end);
            if (run.end() <= pos || run.end() > end) {
                throw new IllegalStateException("a bitmap run from " + pos + " ends at " + run.end());
            }
            out.add(new Extent(run.end() - pos, run.dirty() ? STATE_DIRTY : 0));
            pos = run.end();
        }
        return out;
    }
}
