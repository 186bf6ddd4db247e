package io.github.qcowloom.os;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.Closeable;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

/**
 * One io_uring instance, raw: the submission and completion rings mapped into memory, SQE preparation, the
 * {@code io_uring_enter} call and completion reaping. Layouts are those of {@code <linux/io_uring.h>}.
 *
 * <p>Not thread-safe: {@link UringQueue} serialises {@link #prepare} under its submission lock and
 * {@link #reap} under its completion lock; {@link #enter} may run on several threads at once (the kernel
 * serialises it). The two sides touch disjoint memory (the SQ tail and SQEs against the CQ head and CQEs),
 * which is how io_uring is meant to be shared by a producer and a consumer.
 */
final class IoUring implements Closeable {
    /** Does nothing, and completes: wakes a thread waiting in the ring. */
    static final byte OP_NOP = 0;
    static final byte OP_FSYNC = 3;
    /** Waits until the descriptor is ready: the poll mask goes where read/write flags go (poll32_events). */
    static final byte OP_POLL_ADD = 6;
    /** fallocate: the SQE's address field holds the length, its length field the mode. */
    static final byte OP_FALLOCATE = 17;
    static final byte OP_READ = 22;
    static final byte OP_WRITE = 23;
    /** recv(2) on a socket; the kernel waits for data itself, without the caller's poller. */
    static final byte OP_RECV = 27;
    /** Linux 6.9 and later; older kernels answer -EINVAL. */
    static final byte OP_FTRUNCATE = 55;
    static final int FSYNC_DATASYNC = 1;
    static final int ENTER_GETEVENTS = 1;
    /** Only the thread that set the ring up enters it (Linux 6.0). */
    static final int SETUP_SINGLE_ISSUER = 1 << 12;
    /** Completion work runs when the issuer asks for completions, not by interrupting it (Linux 6.1). */
    static final int SETUP_DEFER_TASKRUN = 1 << 13;
    private static final int FEAT_SINGLE_MMAP = 1;
    // Linux 5.17. Older kernels accept the set-up but lack what the queue relies on: OP_READ/OP_WRITE (5.6), and
    // waking every waiter of a completion (5.15), without which a lone request waiting beside the completion
    // thread could sleep past its own completion.
    private static final int FEAT_CQE_SKIP = 1 << 11;
    private static final long OFF_SQ_RING = 0L;
    private static final long OFF_CQ_RING = 0x8000000L;
    private static final long OFF_SQES = 0x10000000L;
    private static final int SQE_SIZE = 64;
    private static final int CQE_SIZE = 16;

    // Ring indices are shared with the kernel: the tail we publish with release, the tail we read with acquire.
    private static final VarHandle INT = JAVA_INT.varHandle();

    private final int fd;
    private final int sqEntries;
    private final int cqEntries;
    private final MemorySegment sqRing;
    private final MemorySegment cqRing; // the same mapping as sqRing with FEAT_SINGLE_MMAP
    private final MemorySegment sqes;
    private final long sqTailAt;
    private final int sqMask;
    private final long cqHeadAt;
    private final long cqTailAt;
    private final int cqMask;
    private final long cqesAt;
    private int sqTail; // ours alone: the kernel only reads it
    private int cqHead; // ours alone: the kernel only reads it

    private IoUring(int fd, MemorySegment params, MemorySegment sqRing, MemorySegment cqRing, MemorySegment sqes) {
        this.fd = fd;
        this.sqEntries = params.get(JAVA_INT, 0);
        this.cqEntries = params.get(JAVA_INT, 4);
        this.sqRing = sqRing;
        this.cqRing = cqRing;
        this.sqes = sqes;
        this.sqTailAt = params.get(JAVA_INT, 40 + 4);
        this.sqMask = sqRing.get(JAVA_INT, params.get(JAVA_INT, 40 + 8));
        long sqArrayAt = params.get(JAVA_INT, 40 + 24);
        this.cqHeadAt = params.get(JAVA_INT, 80);
        this.cqTailAt = params.get(JAVA_INT, 80 + 4);
        this.cqMask = cqRing.get(JAVA_INT, params.get(JAVA_INT, 80 + 8));
        this.cqesAt = params.get(JAVA_INT, 80 + 20);
        this.sqTail = (int) INT.getAcquire(sqRing, sqTailAt);
        this.cqHead = (int) INT.getAcquire(cqRing, cqHeadAt);
        // SQE i always sits in ring slot i: the indirection array is the identity, written once.
        for (int i = 0; i < sqEntries; i++) {
            sqRing.set(JAVA_INT, sqArrayAt + 4L * i, i);
        }
    }

    /** Sets up a ring of {@code entries} submission slots (a power of two) and twice as many completions. */
    static IoUring create(int entries) throws IOException {
        return create(entries, 0);
    }

    /** The same, with {@code IORING_SETUP_*} flags. */
    static IoUring create(int entries, int setupFlags) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment params = arena.allocate(120, 8);
            params.set(JAVA_INT, 8, setupFlags);
            int ring = (int) LinuxCalls.check(LinuxCalls.syscall(LinuxCalls.errnoSegment(arena),
                    SyscallNumbers.IO_URING_SETUP, entries, params.address(), 0, 0, 0, 0), "io_uring_setup");
            MemorySegment sq = null;
            MemorySegment cq = null;
            try {
                if ((params.get(JAVA_INT, 20) & FEAT_CQE_SKIP) == 0) {
                    throw new IOException("io_uring of this kernel is too old (Linux 5.17 or later needed)");
                }
                int sqEntries = params.get(JAVA_INT, 0);
                int cqEntries = params.get(JAVA_INT, 4);
                long sqSize = params.get(JAVA_INT, 40 + 24) + 4L * sqEntries;
                long cqSize = params.get(JAVA_INT, 80 + 20) + (long) CQE_SIZE * cqEntries;
                boolean single = (params.get(JAVA_INT, 20) & FEAT_SINGLE_MMAP) != 0;
                sq = LinuxCalls.mmap(ring, single ? Math.max(sqSize, cqSize) : sqSize, OFF_SQ_RING);
                cq = single ? sq : LinuxCalls.mmap(ring, cqSize, OFF_CQ_RING);
                MemorySegment sqes = LinuxCalls.mmap(ring, (long) SQE_SIZE * sqEntries, OFF_SQES);
                return new IoUring(ring, params, sq, cq, sqes);
            } catch (IOException | RuntimeException e) {
                if (cq != null && cq != sq) {
                    LinuxCalls.munmap(cq);
                }
                if (sq != null) {
                    LinuxCalls.munmap(sq);
                }
                LinuxCalls.close(ring);
                throw e;
            }
        }
    }

    int submissionEntries() {
        return sqEntries;
    }

    int completionEntries() {
        return cqEntries;
    }

    /**
     * Fills the next submission slot and publishes it to the kernel (which sees it at the next enter). The
     * caller guarantees a free slot: no more than {@link #submissionEntries()} prepared and not yet submitted.
     */
    void prepare(byte opcode, int fd, long address, int length, long offset, int opFlags, long userData) {
        long at = (long) (sqTail & sqMask) * SQE_SIZE;
        for (int word = 0; word < SQE_SIZE; word += 8) {
            sqes.set(JAVA_LONG, at + word, 0L);
        }
        sqes.set(JAVA_BYTE, at, opcode);
        sqes.set(JAVA_INT, at + 4, fd);
        sqes.set(JAVA_LONG, at + 8, offset);
        sqes.set(JAVA_LONG, at + 16, address);
        sqes.set(JAVA_INT, at + 24, length);
        sqes.set(JAVA_INT, at + 28, opFlags);
        sqes.set(JAVA_LONG, at + 32, userData);
        sqTail++;
        // Release: the SQE's bytes are visible to the kernel before the tail that hands it over.
        INT.setRelease(sqRing, sqTailAt, sqTail);
    }

    /**
     * {@code io_uring_enter}: submits up to {@code toSubmit} prepared SQEs and, with {@link #ENTER_GETEVENTS},
     * waits until at least {@code minComplete} completions are posted. Returns the number submitted, or -errno.
     */
    long enter(MemorySegment errno, int toSubmit, int minComplete, int flags) {
        return LinuxCalls.syscall(errno, SyscallNumbers.IO_URING_ENTER, fd, toSubmit, minComplete, flags, 0, 0);
    }

    /** Receives one completion. */
    interface Completion {
        void complete(long userData, int result);
    }

    /** Hands every posted completion to {@code sink} and frees their slots; returns how many. */
    int reap(Completion sink) {
        int tail = (int) INT.getAcquire(cqRing, cqTailAt);
        int n = tail - cqHead;
        for (int head = cqHead; head != tail; head++) {
            long at = cqesAt + (long) (head & cqMask) * CQE_SIZE;
            sink.complete(cqRing.get(JAVA_LONG, at), cqRing.get(JAVA_INT, at + 8));
        }
        cqHead = tail;
        // Release: the CQEs are read before the kernel may overwrite their slots.
        INT.setRelease(cqRing, cqHeadAt, cqHead);
        return n;
    }

    @Override
    public void close() {
        LinuxCalls.munmap(sqes);
        if (cqRing != sqRing) {
            LinuxCalls.munmap(cqRing);
        }
        LinuxCalls.munmap(sqRing);
        LinuxCalls.close(fd);
    }
}
