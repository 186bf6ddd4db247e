package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ReadOnlyImageException;
import java.nio.ByteBuffer;

/** A view of convert's sources, which convert only reads: every call that would change it is refused. */
abstract class ReadOnlySource implements BlockDevice {
    @Override
    public final void write(long offset, ByteBuffer src) throws ReadOnlyImageException {
        throw refused();
    }

    @Override
    public final void discard(long offset, long length) throws ReadOnlyImageException {
        throw refused();
    }

    @Override
    public final void writeZeroes(long offset, long length, boolean mayUnmap) throws ReadOnlyImageException {
        throw refused();
    }

    @Override
    public final void resize(long newSize) throws ReadOnlyImageException {
        throw refused();
    }

    @Override
    public final void flush() {
    }

    @Override
    public final boolean readOnly() {
        return true;
    }

    private ReadOnlyImageException refused() {
        return new ReadOnlyImageException(getClass().getSimpleName() + ": convert's sources are read-only");
    }
}
