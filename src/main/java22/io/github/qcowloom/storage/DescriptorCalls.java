package io.github.qcowloom.storage;

import io.github.qcowloom.os.NativeFile;
import java.io.IOException;
import java.nio.channels.ClosedChannelException;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Calls on a descriptor of our own: each made again while it fails retryably, its failure thrown as FileChannel
 * would throw it, and the descriptor closed only when no call uses it, since a closed number is soon reused by
 * another open file, into which a late call would write (or punch). Lock-free: a count of the calls in flight, plus
 * {@code CLOSED} once closing has begun.
 */
final class DescriptorCalls {
    private static final int CLOSED = 1 << 30;
    private final AtomicInteger users = new AtomicInteger();
    private final Path path;
    private final NativeFile file;

    DescriptorCalls(Path path, NativeFile file) {
        this.path = path;
        this.file = file;
    }

    /** One call on the descriptor: returns its result, or -errno. */
    interface Call {
        int run(int fd) throws IOException;
    }

    /** Makes {@code call} ({@code name} names it in errors); returns its result. */
    int call(String name, Call call) throws IOException {
        while (true) {
            int result;
            if (users.incrementAndGet() >= CLOSED) {
                users.decrementAndGet();
                throw new ClosedChannelException();
            }
            try {
                result = call.run(file.fd());
            } finally {
                users.decrementAndGet();
            }
            if (result >= 0) {
                return result;
            }
            if (!NativeFile.retryable(result)) {
                throw new FailedCallException(-result, NativeFile.message(-result) + " (" + name + " " + path + ")");
            }
        }
    }

    /** Closes the descriptor once the calls in flight have ended; later calls fail as on a closed channel. */
    void close() {
        int before;
        do {
            before = users.get();
            if (before >= CLOSED) {
                return; // closed already, or closing on another thread
            }
        } while (!users.compareAndSet(before, before + CLOSED));
        while (users.get() != CLOSED) {
            LockSupport.parkNanos(10_000); // a call in flight finishes within its I/O time
        }
        file.close();
    }
}
