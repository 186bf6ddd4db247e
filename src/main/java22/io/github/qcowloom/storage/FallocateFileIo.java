package io.github.qcowloom.storage;

import io.github.qcowloom.os.NativeFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * fallocate(2) on the caller's thread, on a descriptor of our own: the holes and reserved space of a file whose bytes
 * FileChannel moves where FileChannel was asked for by name, so no ring is opened (QEMU's aio=threads makes the
 * same calls from its worker threads). Reads, writes and syncs stay FileChannel's and are never asked of this one.
 * Loaded by {@link FileStorage} by name: it exists only in the jar's Java 22+ layer.
 */
final class FallocateFileIo implements FileIo {
    /** Platform threads for virtual threads' calls, as many as are in flight, gone after a minute idle. */
    private static final ExecutorService CALLERS = Executors.newCachedThreadPool(
            Thread.ofPlatform().daemon().name("fallocate-", 0).factory());
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

    /**
     * fallocate, made on a platform thread of {@link #CALLERS} where the caller is a virtual thread: a downcall
     * holds its carrier for the whole call (the JDK adds no carrier for it, as it does for FileChannel's), and a
     * large punch would stop the other requests on it. The caller waits for the call to end, interrupted or not.
     */
    private boolean call(NativeFile.Fallocation mode, long position, long length) throws IOException {
        DescriptorCalls.Call fallocate = fd -> NativeFile.fallocate(fd, mode, position, length);
        if (!Thread.currentThread().isVirtual()) {
            calls.call("fallocate", fallocate);
            return true;
        }
        Future<Integer> made = CALLERS.submit(() -> calls.call("fallocate", fallocate));
        boolean interrupted = false;
        try {
            while (true) {
                try {
                    made.get();
                    return true;
                } catch (InterruptedException e) {
                    interrupted = true; // the call goes on: the range is the caller's until it ends
                }
            }
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new IOException("fallocate failed", e.getCause());
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
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
