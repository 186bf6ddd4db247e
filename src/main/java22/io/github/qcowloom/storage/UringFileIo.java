package io.github.qcowloom.storage;

import io.github.qcowloom.os.NativeFile;
import io.github.qcowloom.os.UringQueue;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Reference;
import java.nio.ByteBuffer;
import java.nio.file.Path;

/**
 * Positional I/O through the process's io_uring ({@link UringQueue}) on a descriptor of our own. Direct
 * buffers go to the kernel as they are; heap buffers through a pooled native copy, as FileChannel does.
 * Loaded by {@link UringSupport} by name: it exists only in the jar's Java 22+ layer.
 *
 * <p>Closing waits for the requests in flight ({@link DescriptorCalls}).
 */
final class UringFileIo implements FileIo {
    private static final int HEAP_BOUNCE_SIZE = 64 * 1024;
    private static final AlignedBufferPool HEAP_BOUNCE = new AlignedBufferPool(4096, HEAP_BOUNCE_SIZE, 256);

    private final UringQueue queue;
    /** Opened with O_DIRECT; else the page cache's reads and writes take the loops' short ways (UringQueue). */
    private final boolean direct;
    private final DescriptorCalls calls;

    private UringFileIo(Path path, NativeFile file, UringQueue queue, boolean direct) {
        this.calls = new DescriptorCalls(path, file);
        this.queue = queue;
        this.direct = direct;
    }

    /** Opens an existing file; throws if io_uring is refused here (UringSupport then falls back). */
    static FileIo open(Path path, boolean writable, boolean direct) throws IOException {
        UringQueue queue;
        try {
            queue = UringQueue.shared();
        } catch (IOException | IllegalCallerException | LinkageError e) {
            // LinkageError: the bindings' set-up failed, e.g. native access denied (--illegal-native-access=deny)
            throw new UringUnavailableException(String.valueOf(e.getMessage()), e);
        }
        return new UringFileIo(path, NativeFile.open(path, writable, direct), queue, direct);
    }

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        if (dst.isReadOnly()) {
            throw new IllegalArgumentException("Read-only buffer"); // as FileChannel: the kernel would write it
        }
        if (!dst.hasRemaining()) {
            return 0;
        }
        if (!dst.isDirect()) {
            ByteBuffer bounce = HEAP_BOUNCE.take();
            try {
                ByteBuffer chunk = bounce.limit(Math.min(dst.remaining(), bounce.capacity()));
                int n = read(chunk, position);
                if (n > 0) {
                    dst.put(chunk.flip());
                }
                return n;
            } finally {
                HEAP_BOUNCE.give(bounce);
            }
        }
        long address = MemorySegment.ofBuffer(dst).address();
        int n = calls.call("read", fd -> direct ? queue.read(fd, address, dst.remaining(), position)
                : queue.readBuffered(fd, address, dst.remaining(), position));
        Reference.reachabilityFence(dst); // the kernel wrote into it until the call returned
        dst.position(dst.position() + n);
        return n == 0 ? -1 : n;
    }

    @Override
    public int write(ByteBuffer src, long position) throws IOException {
        if (!src.hasRemaining()) {
            return 0;
        }
        if (!src.isDirect()) {
            ByteBuffer bounce = HEAP_BOUNCE.take();
            try {
                int length = Math.min(src.remaining(), bounce.capacity());
                bounce.put(0, src, src.position(), length).limit(length);
                int n = write(bounce, position);
                src.position(src.position() + n);
                return n;
            } finally {
                HEAP_BOUNCE.give(bounce);
            }
        }
        long address = MemorySegment.ofBuffer(src).address();
        int n = calls.call("write", fd -> direct ? queue.write(fd, address, src.remaining(), position)
                : queue.writeBuffered(fd, address, src.remaining(), position));
        Reference.reachabilityFence(src); // the kernel read from it until the call returned
        src.position(src.position() + n);
        return n;
    }

    @Override
    public void force() throws IOException {
        calls.call("fdatasync", queue::fdatasync);
    }

    /** A ranged fdatasync through the ring; one longer than a ring entry can say is the whole file's. */
    @Override
    public void forceRange(long position, long length) throws IOException {
        if (length > Integer.MAX_VALUE) {
            force();
            return;
        }
        calls.call("fdatasync", fd -> queue.fdatasyncRange(fd, position, (int) length));
    }

    @Override
    public boolean truncate(long length) throws IOException {
        calls.call("ftruncate", fd -> queue.truncate(fd, length));
        return true;
    }

    @Override
    public boolean allocate(long position, long length) throws IOException {
        calls.call("fallocate", fd -> queue.allocate(fd, position, length));
        return true;
    }

    @Override
    public boolean punchHole(long position, long length) throws IOException {
        calls.call("fallocate", fd -> queue.punchHole(fd, position, length));
        return true;
    }

    @Override
    public boolean zeroRange(long position, long length) throws IOException {
        calls.call("fallocate", fd -> queue.zeroRange(fd, position, length));
        return true;
    }

    @Override
    public void close() {
        calls.close();
    }
}
