package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.OutOfRangeException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * convert's sources given one after another, read as one disk: each begins where the one before ends, as qemu-img
 * convert concatenates them (its sizes are whole sectors, as this driver's are). Read-only; a request that spans
 * two sources is split between them, and a block status answers for the source that holds its first byte.
 * Closing closes every source.
 */
final class ConcatenatedSources extends ReadOnlySource {
    private final List<BlockDevice> sources;
    /** starts[i]: where source i begins; starts[n]: the total size. */
    private final long[] starts;

    ConcatenatedSources(List<BlockDevice> sources) {
        this.sources = List.copyOf(sources);
        this.starts = new long[sources.size() + 1];
        for (int i = 0; i < sources.size(); i++) {
            starts[i + 1] = starts[i] + sources.get(i).size();
        }
    }

    @Override
    public long size() {
        return starts[sources.size()];
    }

    /** The sources, in order. */
    List<BlockDevice> parts() {
        return sources;
    }

    /** The source whose bytes a block status at {@code offset} answers for. */
    BlockDevice partAt(long offset) {
        return sources.get(sourceAt(offset));
    }

    /** The source holding byte {@code offset}: the last one that starts at or before it and is not empty. */
    private int sourceAt(long offset) {
        int i = sources.size() - 1;
        while (starts[i] > offset || starts[i + 1] == starts[i]) {
            i--;
        }
        return i;
    }

    private void check(long offset, long length) throws OutOfRangeException {
        if (offset < 0 || length < 0 || offset > size() - length) {
            throw new OutOfRangeException("request of " + length + " bytes at offset " + offset
                    + " is outside the sources' " + size() + " bytes");
        }
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        check(offset, dst.remaining());
        while (dst.hasRemaining()) {
            int i = sourceAt(offset);
            int n = (int) Math.min(dst.remaining(), starts[i + 1] - offset);
            ByteBuffer part = dst.duplicate().limit(dst.position() + n);
            sources.get(i).read(offset - starts[i], part);
            dst.position(dst.position() + n);
            offset += n;
        }
    }

    @Override
    public BlockStatus blockStatus(long offset, long length) throws IOException {
        if (length <= 0) {
            throw new OutOfRangeException("block status of an empty range at offset " + offset);
        }
        check(offset, length);
        int i = sourceAt(offset);
        return sources.get(i).blockStatus(offset - starts[i], Math.min(length, starts[i + 1] - offset));
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (BlockDevice source : sources) {
            try {
                source.close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
