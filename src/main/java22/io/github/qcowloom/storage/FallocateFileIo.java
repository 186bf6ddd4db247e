package io.github.qcowloom.storage;

import io.github.qcowloom.os.NativeFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * fallocate(2) on the caller's thread, on a descriptor of our own: the holes and reserved space of a file whose bytes
 * FileChannel moves where FileChannel was asked for by name, so no ring is opened (QEMU's aio=threads makes the
 * same calls from its worker threads). Reads, writes and syncs stay FileChannel's and are never asked of this one.
 * Loaded by {@link FileStorage} by name: it exists only in the jar's Java 22+ layer.
 */
final class FallocateFileIo implements FileIo {
    private final DescriptorCalls calls;

    private FallocateFileIo(Path path, NativeFile file) {
        this.calls = new DescriptorCalls(path, file);
    }

    /** Opens an existing file for writing; throws UnsupportedOperationException where the native layer cannot run. */
    static FileIo open(Path path) throws IOException {
        return new FallocateFileIo(path, NativeFile.open(path, true, false));
    }

    @Override
    public boolean allocate(long position, long length) throws IOException {
        return call(NativeFile.Fallocation.ALLOCATE, position, length);
    }

    @Override
    public boolean punchHole(long position, long length) throws IOException {
        return call(NativeFile.Fallocation.PUNCH_HOLE, position, length);
    }

    @Override
    public boolean zeroRange(long position, long length) throws IOException {
        return call(NativeFile.Fallocation.ZERO_RANGE, position, length);
    }

    private boolean call(NativeFile.Fallocation mode, long position, long length) throws IOException {
        calls.call("fallocate", fd -> NativeFile.fallocate(fd, mode, position, length));
        return true;
    }

    @Override
    public int read(ByteBuffer dst, long position) {
        throw new UnsupportedOperationException("FileChannel reads this file");
    }

    @Override
    public int write(ByteBuffer src, long position) {
        throw new UnsupportedOperationException("FileChannel writes this file");
    }

    @Override
    public void force() {
        throw new UnsupportedOperationException("FileChannel syncs this file");
    }

    @Override
    public void close() {
        calls.close();
    }
}
