package io.github.qcowloom.storage;

import java.io.IOException;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Positional I/O on a {@link FileChannel} that survives interrupts. A FileChannel closes itself for every
 * user when any thread blocked in it is interrupted; one cancelled request must not break the file for all
 * others, so the channel is reopened, the interrupted caller still gets its
 * {@link ClosedByInterruptException}, and callers that merely saw the close retry.
 */
final class ReopeningChannel implements FileIo {
    private final Path path;
    private final Set<OpenOption> reopenOptions;
    private final ReentrantLock reopenLock = new ReentrantLock();
    private volatile FileChannel channel;
    private volatile boolean closed;
    /** Times an interrupt's close made this reopen the file: a sync that saw it change may have lost an error. */
    private volatile long reopens;

    /** Opens {@code path}; reopening uses the same options less those that create or truncate. */
    ReopeningChannel(Path path, Set<? extends OpenOption> options) throws IOException {
        this.path = path;
        this.channel = FileChannel.open(path, options);
        Set<OpenOption> reopen = new HashSet<>(options);
        reopen.removeAll(Set.of(StandardOpenOption.CREATE, StandardOpenOption.CREATE_NEW,
                StandardOpenOption.TRUNCATE_EXISTING));
        this.reopenOptions = Set.copyOf(reopen);
    }

    /** One positional read; -1 at the end of the file. */
    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        while (true) {
            FileChannel ch = channel;
            try {
                return ch.read(dst, position);
            } catch (ClosedChannelException e) {
                recover(ch, e);
            }
        }
    }

    /** One positional write; may write fewer bytes than remain. */
    @Override
    public int write(ByteBuffer src, long position) throws IOException {
        while (true) {
            FileChannel ch = channel;
            try {
                return ch.write(src, position);
            } catch (ClosedChannelException e) {
                recover(ch, e);
            }
        }
    }

    /** fdatasync. */
    @Override
    public void force() throws IOException {
        while (true) {
            FileChannel ch = channel;
            try {
                ch.force(false);
                return;
            } catch (ClosedChannelException e) {
                recover(ch, e);
            }
        }
    }

    /**
     * fdatasync of the range alone, on Java 22+ (msync of a mapping of the range, which Linux makes
     * vfs_fsync_range; the mapping is gone when this returns); on Java 21, where a mapping stays until the garbage
     * collector finds it, the whole {@link #force()}.
     */
    @Override
    public void forceRange(long position, long length) throws IOException {
        MethodHandle mappedSync = MappedSync.METHOD.handle();
        if (mappedSync == null) {
            force();
            return;
        }
        while (true) {
            FileChannel ch = channel;
            try {
                mappedSync.invokeExact(ch, position, length);
                return;
            } catch (ClosedChannelException e) {
                recover(ch, e);
            } catch (IOException | RuntimeException | Error e) {
                throw e;
            } catch (Throwable e) {
                throw new IllegalStateException(e); // the method throws only IOException
            }
        }
    }

    /** Null, or why ranged syncs are the whole file's here (Java 21, or the Java 22+ layer missing). */
    static String rangedSyncMissing() {
        return MappedSync.METHOD.missing();
    }

    /** The Java 22+ layer's ranged sync, looked up at the first ranged sync (info and check never make one). */
    private static final class MappedSync {
        static final Java22Method METHOD = Java22Method.find(MethodHandles.lookup(),
                "io.github.qcowloom.storage.MappedRangeSync", "force",
                MethodType.methodType(void.class, FileChannel.class, long.class, long.class), "a ranged sync");
    }

    /** Length of the file. */
    long size() throws IOException {
        while (true) {
            FileChannel ch = channel;
            try {
                return ch.size();
            } catch (ClosedChannelException e) {
                recover(ch, e);
            }
        }
    }

    /** Reopens after an interrupt closed {@code failed}; rethrows {@code e} unless the caller should retry. */
    private void recover(FileChannel failed, ClosedChannelException e) throws IOException {
        reopenLock.lock();
        try {
            if (closed) {
                throw e;
            }
            if (channel == failed) {
                channel = FileChannel.open(path, reopenOptions);
                reopens++; // under reopenLock
            }
        } finally {
            reopenLock.unlock();
        }
        if (e instanceof ClosedByInterruptException) {
            throw e;
        }
    }

    /** How many times the file was reopened after an interrupt closed it. */
    long reopens() {
        return reopens;
    }

    /** True once {@link #close} ran. */
    boolean closed() {
        return closed;
    }

    /** Tests: closes the channel as an interrupt would, and reopens it as the next caller would. */
    void closeAsAnInterruptWouldForTests() throws IOException {
        FileChannel ch = channel;
        ch.close();
        recover(ch, new java.nio.channels.AsynchronousCloseException());
    }

    @Override
    public void close() throws IOException {
        reopenLock.lock();
        try {
            closed = true;
            channel.close();
        } finally {
            reopenLock.unlock();
        }
    }
}
