package io.github.qcowloom.os;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.LongAdder;

/**
 * Socket reads that wait through the ring of the event loop that runs the calling thread ({@link UringLoop}): what
 * the socket holds is read at once (a non-blocking recv, as the JDK reads); when it is empty, the thread parks as
 * for a file request, and the loop takes the data in the {@code io_uring_enter} it waits in. A JDK read that
 * finds no data instead registers the socket with the JDK's poller thread, which on data wakes the loop through its
 * eventfd: two more threads and four more system calls a wait. NBD over a Unix socket, fio at depth 64 on O_DIRECT
 * (2026-12-04 evening, alternating with the build before): random reads 80-91k against 74-82k, with 6.2-6.9 s of
 * the server's CPU against 7.4-7.5 s; random writes, once the data at hand was read at once, 98-101k against
 * 83-92k (each wait through the ring alone, they had been 80-92k).
 */
public final class LoopSockets {
    /**
     * What {@link #receive} answers on a thread that no loop runs, or when half its ring already waits on sockets:
     * the caller reads as it would elsewhere.
     */
    public static final int NOT_ON_A_LOOP = Integer.MIN_VALUE;
    private static final int F_DUPFD_CLOEXEC = 1030;
    private static final int POLLIN = 1;
    private static final int SHUT_RDWR = 2;
    private static final int MSG_DONTWAIT = 0x40;
    private static final LongAdder RECEIVES = new LongAdder();

    private LoopSockets() {
    }

    /** True when an event loop runs the calling thread. */
    public static boolean onALoop() {
        return UringLoop.current() != null;
    }

    /** Waits in a ring asked for so far, over every loop (for tests). */
    public static long receives() {
        return RECEIVES.sum();
    }

    /** A second descriptor of {@code fd}'s socket, closed on exec; the caller closes it. */
    public static int duplicate(int fd) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            return (int) LinuxCalls.check(LinuxCalls.syscall(LinuxCalls.errnoSegment(arena), SyscallNumbers.FCNTL,
                    fd, F_DUPFD_CLOEXEC, 0, 0, 0, 0), "fcntl(F_DUPFD_CLOEXEC)");
        }
    }

    /**
     * Reads what the socket has into {@code dst} (direct), waiting for something through the calling thread's
     * loop: the bytes read, -1 at the end of the stream, or {@link #NOT_ON_A_LOOP}. The ring itself waits for an
     * empty socket's data; should it answer EAGAIN instead (the JDK makes its sockets non-blocking), the loop waits
     * for the socket to be readable and reads again.
     */
    public static int receive(int fd, ByteBuffer dst) throws IOException {
        UringLoop loop = UringLoop.current();
        if (loop == null) {
            return NOT_ON_A_LOOP;
        }
        if (!dst.hasRemaining()) {
            return 0;
        }
        long address = MemorySegment.ofBuffer(dst).address();
        // What is there already is read at once, as the JDK reads it: the ring's round trip is for waiting.
        int now = (int) LinuxCalls.syscall(loop.errno(), SyscallNumbers.RECVFROM, fd, address, dst.remaining(),
                MSG_DONTWAIT, 0, 0);
        if (now > 0) {
            dst.position(dst.position() + now);
            loop.yieldIfTurnSpent(System.nanoTime()); // a client that keeps sending must not keep the loop
            return now;
        } else if (now == 0) {
            return -1;
        } else if (now != -LinuxCalls.EAGAIN && now != -LinuxCalls.EINTR) {
            throw new IOException(LinuxCalls.strerror(-now));
        }
        while (true) {
            RECEIVES.increment();
            int r = loop.awaitSocket(IoUring.OP_RECV, fd, address, dst.remaining(), 0);
            if (r == UringLoop.NO_ROOM) {
                RECEIVES.decrement();
                return NOT_ON_A_LOOP;
            } else if (r > 0) {
                dst.position(dst.position() + r);
                return r;
            } else if (r == 0) {
                return -1;
            } else if (r == -LinuxCalls.EAGAIN) {
                int ready = loop.awaitSocket(IoUring.OP_POLL_ADD, fd, 0, 0, POLLIN);
                if (ready == UringLoop.NO_ROOM) {
                    return NOT_ON_A_LOOP;
                } else if (ready < 0) {
                    throw new IOException("poll: " + LinuxCalls.strerror(-ready));
                }
            } else if (r != -LinuxCalls.EINTR) {
                throw new IOException(LinuxCalls.strerror(-r));
            }
        }
    }


    /**
     * Shuts both directions of the socket down: a read waiting in a ring, or a thread blocked in accept or receive,
     * returns. Through the system call handle the disk layer has linked already (linking {@link UnixSockets}' own
     * calls would hold a loop for milliseconds).
     */
    public static void shutdown(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            long ignored = LinuxCalls.syscall(LinuxCalls.errnoSegment(arena), SyscallNumbers.SHUTDOWN, fd, SHUT_RDWR,
                    0, 0, 0, 0);
        }
    }

    public static void close(int fd) {
        LinuxCalls.close(fd);
    }
}
