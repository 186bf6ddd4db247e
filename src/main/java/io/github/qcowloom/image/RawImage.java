package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;

/** A raw image: guest offset equals file offset. Used for raw backing files and raw convert targets. */
public final class RawImage implements BlockDevice {
    private final Storage storage;

    public RawImage(Storage storage) {
        this.storage = storage;
    }

    @Override
    public long size() {
        try {
            return storage.size();
        } catch (IOException e) {
            return 0;
        }
    }

    private void check(long offset, long length) throws IOException {
        long size = storage.size();
        if (offset < 0 || length < 0 || offset > size - length) {
            throw new OutOfRangeException("request of " + length + " bytes at offset " + offset
                    + " is outside the raw image of " + size + " bytes");
        }
    }

    @Override
    public void read(long offset, ByteBuffer dst) throws IOException {
        check(offset, dst.remaining());
        storage.readFully(dst, offset);
    }

    /** Data everywhere, at the guest offset: Java cannot ask the file system for holes (no SEEK_DATA). */
    @Override
    public BlockStatus blockStatus(long offset, long length) throws IOException {
        check(offset, length);
        if (length == 0) {
            throw new OutOfRangeException("block status of an empty range at offset " + offset);
        }
        return new BlockStatus(length, 0, BlockStatus.Allocation.DATA,
                new BlockStatus.Host(BlockStatus.HostFile.IMAGE, offset));
    }

    @Override
    public void write(long offset, ByteBuffer src) throws IOException {
        check(offset, src.remaining());
        storage.write(src, offset);
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        check(offset, length);
        storage.punchHole(offset, length);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        check(offset, length);
        if (mayUnmap) {
            storage.punchHole(offset, length);
        } else {
            storage.writeZeroes(offset, length);
        }
    }

    @Override
    public void flush() throws IOException {
        storage.flush();
    }

    @Override
    public void resize(long newSize) throws IOException {
        storage.setLength(newSize);
    }

    @Override
    public boolean readOnly() {
        return storage.readOnly();
    }

    @Override
    public void close() throws IOException {
        storage.close();
    }
}
