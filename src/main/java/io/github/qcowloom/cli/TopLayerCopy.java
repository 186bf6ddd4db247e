package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * convert -n -B, as qemu-img's: given a backing file for the target, qemu-img asks the source's top layer alone for
 * block status (target_has_backing) and leaves the target as it is wherever that layer shows its backing file, so
 * that the target's own backing file shows through there; what the top layer holds, data or zeroes, is copied as
 * -n copies it. (With -n the name -B gives is not used.) The chain's status tells the same apart: what the top
 * leaves to its backing file is answered by a layer below (depth above 0), whose runs are cut where those layers
 * change, which matters nothing here, as each run is passed over or copied on its own.
 *
 * <p>The copy reads the source through {@link #reading()}, in which the ranges left to the backing file read as
 * zeroes without being read, and {@link #sink} passes only the top layer's ranges on.
 */
final class TopLayerCopy {
    private final BlockDevice source;

    TopLayerCopy(BlockDevice source) {
        this.source = source;
    }

    /** The source as the copy reads it. */
    BlockDevice reading() {
        return new TopLayerView();
    }

    /** {@code inner}, given only the ranges of each piece that the source's top layer holds. */
    ChunkCopy.Sink sink(ChunkCopy.Sink inner) {
        return (offset, chunk, zero) -> {
            List<ChunkCopy.Write> writes = new ArrayList<>();
            int n = chunk.limit();
            for (int done = 0; done < n; ) {
                long run = topRun(offset + done, n - done);
                int length = (int) Math.abs(run);
                if (run > 0) {
                    ChunkCopy.Write w = inner.prepare(offset + done, chunk.slice(done, length), zero);
                    if (w != ChunkCopy.Write.NONE) {
                        writes.add(w);
                    }
                }
                done += length;
            }
            if (writes.isEmpty()) {
                return ChunkCopy.Write.NONE;
            }
            return () -> {
                for (ChunkCopy.Write w : writes) {
                    w.run();
                }
            };
        };
    }

    /**
     * The run of bytes from {@code offset} (at most {@code max}) that the top layer holds, as a positive length, or
     * that it leaves to its backing file, as a negative one.
     */
    private long topRun(long offset, int max) throws IOException {
        BlockStatus s = source.blockStatus(offset, max);
        return showsBacking(s) ? -s.length() : s.length();
    }

    private static boolean showsBacking(BlockStatus s) {
        return s.depth() > 0;
    }

    /** The source, with what its top layer leaves to its backing file reading as zeroes, unread. */
    private final class TopLayerView extends ReadOnlySource {
        @Override
        public long size() {
            return source.size();
        }

        @Override
        public void read(long offset, ByteBuffer dst) throws IOException {
            source.read(offset, dst);
        }

        @Override
        public BlockStatus blockStatus(long offset, long length) throws IOException {
            BlockStatus s = source.blockStatus(offset, length);
            return showsBacking(s) ? new BlockStatus(s.length(), 0, BlockStatus.Allocation.UNALLOCATED, null) : s;
        }

        @Override
        public Path path() {
            return source.path();
        }

        @Override
        public void close() {
            // a view: the source is closed by its owner
        }
    }
}
