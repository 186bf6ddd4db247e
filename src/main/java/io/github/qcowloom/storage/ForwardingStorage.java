package io.github.qcowloom.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * A storage that forwards every call to another; subclasses override the calls they watch or change. But for
 * {@link #zeroRange}: zeroes the inner storage makes on its own would bypass a subclass that records writes or
 * changes their bytes (a cipher), so it stays false unless a subclass passes it on.
 */
public abstract class ForwardingStorage implements Storage {
    private final Storage inner;

    protected ForwardingStorage(Storage inner) {
        this.inner = inner;
    }

    /** The storage calls go to. */
    protected final Storage inner() {
        return inner;
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        return inner.read(dst, position);
    }

    @Override
    public void write(ByteBuffer src, long position) throws IOException {
        inner.write(src, position);
    }

    @Override
    public void flush() throws IOException {
        inner.flush();
    }

    @Override
    public void flushRange(long position, long length) throws IOException {
        inner.flushRange(position, length);
    }

    @Override
    public void punchHole(long position, long length) throws IOException {
        inner.punchHole(position, length);
    }

    @Override
    public boolean discard(long position, long length) throws IOException {
        return inner.discard(position, length);
    }

    @Override
    public void writeZeroes(long position, long length) throws IOException {
        inner.writeZeroes(position, length);
    }

    @Override
    public void preallocate(long position, long length) throws IOException {
        inner.preallocate(position, length);
    }

    @Override
    public void reserve(long position, long length) throws IOException {
        inner.reserve(position, length);
    }

    @Override
    public long size() throws IOException {
        return inner.size();
    }

    @Override
    public Path path() {
        return inner.path();
    }

    @Override
    public void setLength(long length) throws IOException {
        inner.setLength(length);
    }

    @Override
    public void extendTo(long end) throws IOException {
        inner.extendTo(end);
    }

    @Override
    public int alignment() {
        return inner.alignment();
    }

    @Override
    public boolean waitsForDevice() {
        return inner.waitsForDevice();
    }

    @Override
    public boolean readOnly() {
        return inner.readOnly();
    }

    @Override
    public void event(StorageEvent event) {
        inner.event(event);
    }

    @Override
    public void close() throws IOException {
        inner.close();
    }
}
