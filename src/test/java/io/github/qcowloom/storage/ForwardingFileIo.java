package io.github.qcowloom.storage;

import java.io.IOException;
import java.nio.ByteBuffer;

/** A file's I/O passed on to {@code inner}: tests override the calls they watch or fail. */
abstract class ForwardingFileIo implements FileIo {
    final FileIo inner;

    ForwardingFileIo(FileIo inner) {
        this.inner = inner;
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        return inner.read(dst, position);
    }

    @Override
    public int write(ByteBuffer src, long position) throws IOException {
        return inner.write(src, position);
    }

    @Override
    public void force() throws IOException {
        inner.force();
    }

    @Override
    public void forceRange(long position, long length) throws IOException {
        inner.forceRange(position, length);
    }

    @Override
    public boolean truncate(long length) throws IOException {
        return inner.truncate(length);
    }

    @Override
    public boolean allocate(long position, long length) throws IOException {
        return inner.allocate(position, length);
    }

    @Override
    public boolean punchHole(long position, long length) throws IOException {
        return inner.punchHole(position, length);
    }

    @Override
    public void close() throws IOException {
        inner.close();
    }
}
