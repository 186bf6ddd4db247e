package io.github.qcowloom.nbd;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * A run of a structured READ's range as qemu-nbd sends it (nbd_co_send_sparse_read): one that reads as zeroes by
 * the device's block status goes as an OFFSET_HOLE chunk and is never read, the rest as OFFSET_DATA.
 *
 * @param offset where the run starts on the device
 * @param length its bytes
 * @param hole whether it reads as zeroes
 */
record ReadRun(long offset, long length, boolean hole) {
    /** The runs of {@code [offset, offset + length)}, in order, neighbours of one kind merged. */
    static List<ReadRun> of(BlockDevice dev, long offset, long length) throws IOException {
        List<ReadRun> runs = new ArrayList<>();
        long end = offset + length;
        for (long at = offset; at < end; ) {
            BlockStatus status = dev.blockStatus(at, end - at);
            long n = Math.min(status.length(), end - at);
            ReadRun last = runs.isEmpty() ? null : runs.getLast();
            if (last != null && last.hole == status.zero()) {
                runs.set(runs.size() - 1, new ReadRun(last.offset, last.length + n, last.hole));
            } else {
                runs.add(new ReadRun(at, n, status.zero()));
            }
            at += n;
        }
        return runs;
    }
}
