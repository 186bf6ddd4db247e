package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.Zeroes;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * What the top image of a commit reads, composed by hand: the images above the base (top first, opened read-only,
 * never written) over the base, opened for writing on its own. The base is asked directly rather than through the
 * images above, whose read-only open of it would not see what the commit writes into it.
 */
final class CommitView {
    /** Where the bytes of a run come from: an image above the base that holds them, the base, or nowhere (zeroes). */
    record Run(BlockStatus status, BlockDevice source) {
        /** Bytes that lie past the end of an image above the base read as zeroes, held there (QEMU's rule). */
        boolean zeroesPastAnEnd() {
            return source == null;
        }

        /** Some image above the base holds the run, or it lies past one's end: it is the commit's to copy. */
        boolean aboveBase(BlockDevice base) {
            return source != base;
        }
    }

    private final List<Qcow2Image> above;
    private final BlockDevice base;

    CommitView(List<Qcow2Image> above, BlockDevice base) {
        this.above = above;
        this.base = base;
    }

    /**
     * The run from {@code offset} (at most {@code length} bytes) and where it comes from: the first image above the
     * base that holds it, or zeroes past the end of one that does not (QEMU's bdrv_co_common_block_status_above),
     * or the base.
     */
    Run at(long offset, long length) throws IOException {
        long n = length;
        for (Qcow2Image image : above) {
            long size = image.size();
            if (offset >= size) {
                return new Run(new BlockStatus(n, 0, BlockStatus.Allocation.ZERO, null), null);
            }
            n = Math.min(n, size - offset);
            BlockStatus own = image.ownStatus(offset, n);
            if (own.present()) {
                return new Run(own, image);
            }
            n = own.length();
        }
        return new Run(base.blockStatus(offset, n), base);
    }

    /** Reads what the top image reads at {@code offset} into {@code buf}, position to limit. */
    void read(long offset, ByteBuffer buf) throws IOException {
        int done = 0;
        int length = buf.remaining();
        int start = buf.position();
        while (done < length) {
            Run run = at(offset + done, length - done);
            int n = (int) run.status().length();
            ByteBuffer part = buf.duplicate().position(start + done).limit(start + done + n);
            if (run.zeroesPastAnEnd()) {
                Zeroes.fill(part);
            } else {
                run.source().read(offset + done, part);
            }
            done += n;
        }
        buf.position(buf.limit());
    }
}
