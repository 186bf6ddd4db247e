package io.github.qcowloom.testing;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import java.io.IOException;
import java.nio.ByteBuffer;

/** A {@link BlockDevice} that passes every call to another: tests override the calls they watch or fail. */
public class ForwardingBlockDevice implements BlockDevice {
    private final BlockDevice inner;

    public ForwardingBlockDevice(BlockDevice inner) {
        this.inner = inner;
    }

    @Override
    public long size() {
        return inner.size();
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        inner.read(offset, dst);
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        inner.write(offset, src);
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        inner.discard(offset, length);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        inner.writeZeroes(offset, length, mayUnmap);
    }

    @Override
    public boolean writeZeroesFast(long offset, long length, boolean mayUnmap) throws IOException {
        return inner.writeZeroesFast(offset, length, mayUnmap);
    }

    @Override
    public void prefetch(long offset, long length) throws IOException {
        inner.prefetch(offset, length);
    }

    @Override
    public void flush() throws IOException {
        inner.flush();
    }

    @Override
    public void resize(long newSize) throws IOException {
        inner.resize(newSize);
    }

    @Override
    public boolean readOnly() {
        return inner.readOnly();
    }

    @Override
    public BlockStatus blockStatus(long offset, long length) throws IOException {
        return inner.blockStatus(offset, length);
    }

    @Override
    public void close() throws IOException {
        inner.close();
    }
}
