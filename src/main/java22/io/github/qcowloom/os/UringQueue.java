package io.github.qcowloom.os;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One io_uring shared by every file the process opens through it. A request is straight-line code on its
 * caller's thread: it prepares its SQE, the SQEs of every thread in flight go to the kernel together in one
 * {@code io_uring_enter} (whichever thread finds no submission running makes it for all: flat combining), and
 * the thread parks until its completion is posted. Completions are handed out by whichever thread finds them
 * first: a submitter (requests the kernel finished inline, page-cache hits), a request just resumed (what
 * completed while it waited), or else one platform thread that waits in the kernel and unparks their owners.
 * A request alone in the process skips the ring and makes its system call directly ({@link #request}). A
 * virtual thread so never blocks a carrier on I/O while others are in flight, and requests in flight together
 * share system calls. A request on a virtual thread of an event loop ({@link UringLoop}) goes to that loop
 * instead (its ring, or, for a file opened without O_DIRECT, often the loop's own thread).
 *
 * <p>Locks: {@code submitLock} guards the submission side of the ring (the SQ tail and SQEs), the free slots
 * and {@code prepared}; {@code completeLock} guards the completion side (the CQ head). They are never held
 * together. The {@code submitting} flag admits one {@code io_uring_enter} that submits at a time, and its
 * holder alone uses {@code submitErrno}; {@code active} counts the requests inside the queue, either way, so
 * that only one finding it at 0 goes directly. A request holds a permit of {@code inFlight} from before it
 * prepares until after its completion (the no-op that stops the queue at exit keeps one), so at most
 * {@code capacity} requests are in flight: the submission ring never overflows and the completion ring (twice as
 * large) never drops. {@code SHARED_LOCK} guards the set-up of the process's queue. A {@code Waiter} is completed
 * once (a compare-and-set), by whichever thread reaps it or by {@code fail}; the counters are adders and take no
 * lock.
 */
public final class UringQueue {
    private static final int ENTRIES = 512;
    private static final ReentrantLock SHARED_LOCK = new ReentrantLock();
    private static volatile UringQueue shared;
    private static IOException sharedFailure; // guarded by SHARED_LOCK

    private final IoUring ring;
    private final int capacity;
    private final Semaphore inFlight;
    private final ReentrantLock submitLock = new ReentrantLock();
    private final ReentrantLock completeLock = new ReentrantLock();
    private final AtomicBoolean submitting = new AtomicBoolean();
    private final AtomicReferenceArray<Waiter> waiters;
    private final int[] freeSlots; // guarded by submitLock
    private int freeCount; // guarded by submitLock
    private volatile int prepared; // written under submitLock: prepared and not yet taken by the kernel
    private final MemorySegment submitErrno = LinuxCalls.errnoSegment(Arena.global());
    private final AtomicInteger active = new AtomicInteger(); // requests in the queue's methods, either way
    private volatile IOException broken;
    private final Thread reaper;
    private final AtomicBoolean stopped = new AtomicBoolean();
    /** Whether rings take IORING_OP_FTRUNCATE (Linux 6.9+): a kernel's property, found at the first refusal. */
    private static volatile boolean truncatesInRing = true;
    // What bench prints about the queue (cli.UringCounters): requests each way, io_uring_enter calls (the real
    // batch size) and where a ring request's time goes. A ring request costs three clock reads and three adds
    // (about 0.1 us against its 5-10 us), a direct one an add, a system call an add: they stay on in production.
    private final LongAdder ringRequests = new LongAdder();
    private final LongAdder directRequests = new LongAdder();
    private final LongAdder submitCalls = new LongAdder();
    private final LongAdder waitCalls = new LongAdder();
    private final LongAdder nanosToCompletion = new LongAdder();
    private final LongAdder nanosToResume = new LongAdder();

    /**
     * A request's completion, handed from the completing thread to the parked owner. Completed once: the
     * reaping thread and {@link #fail} may race for it, and the owner must not read the fields while a second
     * completer writes them.
     */
    private static final class Waiter {
        private static final VarHandle CLAIMED;

        static {
            try {
                CLAIMED = MethodHandles.lookup().findVarHandle(Waiter.class, "claimed", boolean.class);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        final Thread owner = Thread.currentThread();
        final long preparedAt = System.nanoTime();
        private volatile boolean claimed; // set by the one completer
        volatile boolean done;
        int result; // written before done
        long completedAt; // written before done

        void complete(int r) {
            if (!CLAIMED.compareAndSet(this, false, true)) {
                return;
            }
            result = r;
            completedAt = System.nanoTime();
            done = true;
            LockSupport.unpark(owner);
        }
    }

    private UringQueue(IoUring ring) {
        this.ring = ring;
        this.capacity = ring.submissionEntries();
        this.inFlight = new Semaphore(capacity);
        this.waiters = new AtomicReferenceArray<>(capacity);
        this.freeSlots = new int[capacity];
        for (int i = 0; i < capacity; i++) {
            freeSlots[i] = i;
        }
        this.freeCount = capacity;
        reaper = Thread.ofPlatform().daemon().name("qcow2-loom-io_uring").unstarted(this::reapForever);
        reaper.start();
    }

    /** The process's queue, set up on first use; throws (the same reason every time) if io_uring is refused. */
    public static UringQueue shared() throws IOException {
        UringQueue q = shared;
        if (q != null) {
            return q;
        }
        SHARED_LOCK.lock();
        try {
            if (shared == null && sharedFailure == null) {
                String reason = LinuxCalls.unsupportedReason();
                try {
                    if (reason != null) {
                        throw new IOException(reason);
                    }
                    shared = new UringQueue(IoUring.create(ENTRIES));
                } catch (IOException e) {
                    sharedFailure = e;
                } catch (RuntimeException e) { // e.g. IllegalCallerException: native access denied
                    sharedFailure = new IOException(e.toString(), e);
                }
            }
            if (sharedFailure != null) {
                throw new IOException(sharedFailure.getMessage(), sharedFailure);
            }
            return shared;
        } finally {
            SHARED_LOCK.unlock();
        }
    }

    /**
     * Ends the completion thread, for a process about to exit, once nothing uses the queue: the JVM waits at exit
     * for every thread in a native call, up to 300 ms (HotSpot's UserThreadWaitAttemptsAtExit), and this one waits
     * in io_uring_enter. Requests made afterwards fail.
     */
    public static void stopForExit() {
        UringQueue q = shared;
        if (q != null) {
            q.stop();
        }
    }

    private void stop() {
        if (!stopped.compareAndSet(false, true)) {
            return; // stopped already (serve's hook, then Main)
        }
        fail(new IOException("the process is exiting"));
        // A no-op's completion ends the completion thread's wait; it then finds the queue broken and returns. It
        // takes a permit, as a request does, and keeps it: the slot is never given back.
        if (!inFlight.tryAcquire()) {
            return; // every slot in flight: their completions wake it
        }
        submitLock.lock();
        try {
            ring.prepare(IoUring.OP_NOP, -1, 0, 0, 0, 0, freeSlots[--freeCount]);
            prepared = prepared + 1;
        } finally {
            submitLock.unlock();
        }
        while (!submitting.compareAndSet(false, true)) {
            Thread.onSpinWait(); // a submission of before the failure, about to end
        }
        try {
            ring.enter(submitErrno, prepared, 0, 0);
        } finally {
            submitting.set(false);
        }
        Joins.briefly(reaper);
    }

    /**
     * The process's io_uring counts so far, the shared queue's and the event loops' together, all zero if neither
     * was set up: requests through a ring, requests made directly (alone in the shared queue or on a loop, or on a
     * loop's thread from the page cache; a read partly cached counts once each way),
     * io_uring_enter calls to submit (a loop's each submit too) and by the completion thread to wait, the ring
     * requests timed (every one of the shared queue's, a sample of a loop's), and the nanoseconds those spent from
     * prepared to completed (handed out) and from completed to running again on their own thread. The order is
     * {@code UringCounters}'.
     */
    public static long[] sharedCounters() {
        long[] c = {UringLoop.REQUESTS.sum(), UringLoop.DIRECT_REQUESTS.sum(), UringLoop.ENTER_CALLS.sum(), 0,
            UringLoop.TIMED_REQUESTS.sum(), UringLoop.NANOS_TO_COMPLETION.sum(), UringLoop.NANOS_TO_RESUME.sum()};
        UringQueue q = shared;
        if (q != null) {
            long ring = q.ringRequests.sum();
            long[] queue = {ring, q.directRequests.sum(), q.submitCalls.sum(), q.waitCalls.sum(), ring,
                q.nanosToCompletion.sum(), q.nanosToResume.sum()};
            for (int i = 0; i < c.length; i++) {
                c[i] += queue[i];
            }
        }
        return c;
    }

    /** pread: returns the bytes read (0 at the end of the file), or -errno. */
    public int read(int fd, long address, int length, long offset) throws IOException {
        return request(IoUring.OP_READ, fd, address, length, offset, 0);
    }

    /** pwrite: returns the bytes written, or -errno. */
    public int write(int fd, long address, int length, long offset) throws IOException {
        return request(IoUring.OP_WRITE, fd, address, length, offset, 0);
    }

    /** fallocate with mode 0 (allocate, growing the file): returns 0, or -errno. */
    public int allocate(int fd, long offset, long length) throws IOException {
        return request(IoUring.OP_FALLOCATE, fd, length, 0, offset, 0);
    }

    /** fallocate with PUNCH_HOLE | KEEP_SIZE (the range reads as zeroes, its blocks freed): 0, or -errno. */
    public int punchHole(int fd, long offset, long length) throws IOException {
        return request(IoUring.OP_FALLOCATE, fd, length, LinuxCalls.PUNCH_HOLE, offset, 0);
    }

    /** fallocate with ZERO_RANGE | KEEP_SIZE (the range reads as zeroes, its blocks kept): 0, or -errno. */
    public int zeroRange(int fd, long offset, long length) throws IOException {
        return request(IoUring.OP_FALLOCATE, fd, length, LinuxCalls.ZERO_RANGE, offset, 0);
    }


    /**
     * ftruncate: returns 0, or -errno. On an event loop through its ring (Linux 6.9+), so that the loop runs on
     * while the file system journals the change; elsewhere, and on older kernels, the system call on the caller's
     * thread, as RandomAccessFile.setLength makes it.
     */
    public int truncate(int fd, long length) throws IOException {
        UringLoop loop = UringLoop.current();
        boolean ringRefused = false;
        if (loop != null && truncatesInRing) {
            int r = loop.request(IoUring.OP_FTRUNCATE, fd, 0, 0, length, 0);
            if (r != -LinuxCalls.EINVAL) {
                return r;
            }
            ringRefused = true; // a bad call, or an operation the ring does not know: the system call tells
        }
        int r = (int) LinuxCalls.blocking(IoUring.OP_FTRUNCATE, fd, 0, 0, length);
        if (ringRefused && r == 0) {
            truncatesInRing = false; // the kernel knows the call, its ring not the operation: before 6.9
        }
        return r;
    }

    /** Whether a loop's ftruncate goes through its ring: until a kernel before 6.9 refuses the operation. */
    static boolean truncatesInRing() {
        return truncatesInRing;
    }

    /**
     * pread of a file opened without O_DIRECT: on an event loop, what the page cache holds is read at once
     * ({@link UringLoop#readBuffered}); elsewhere as {@link #read}.
     */
    public int readBuffered(int fd, long address, int length, long offset) throws IOException {
        UringLoop loop = UringLoop.current();
        return loop != null ? loop.readBuffered(fd, address, length, offset) : read(fd, address, length, offset);
    }

    /**
     * pwrite to a file opened without O_DIRECT: on an event loop, most are made on the loop's thread
     * ({@link UringLoop#writeBuffered}); elsewhere as {@link #write}.
     */
    public int writeBuffered(int fd, long address, int length, long offset) throws IOException {
        UringLoop loop = UringLoop.current();
        return loop != null ? loop.writeBuffered(fd, address, length, offset) : write(fd, address, length, offset);
    }

    /** fdatasync: returns 0, or -errno. */
    public int fdatasync(int fd) throws IOException {
        return request(IoUring.OP_FSYNC, fd, 0, 0, 0, IoUring.FSYNC_DATASYNC);
    }

    /**
     * fdatasync of {@code [offset, offset + length)} alone (vfs_fsync_range; {@code length} > 0): returns 0, or
     * -errno. Always through a ring: the system call a lone request would make is the whole file's.
     */
    public int fdatasyncRange(int fd, long offset, int length) throws IOException {
        if (length <= 0) {
            throw new IllegalArgumentException("a ranged sync of " + length + " bytes"); // 0 at 0: the whole file
        }
        return request(IoUring.OP_FSYNC, fd, 0, length, offset, IoUring.FSYNC_DATASYNC, false);
    }

    /**
     * A request alone in the process makes its system call directly on its own thread: one call, and the
     * kernel wakes it itself, with no ring round trip and no hand-off (QEMU's linux-aio answers such a request
     * in two calls, io_uring through the ring in two plus a completion). It holds its carrier for the device's
     * latency, which costs little while nothing else is in flight; a request that arrives meanwhile goes
     * through the ring from the other carriers.
     */
    private int request(byte opcode, int fd, long address, int length, long offset, int opFlags)
            throws IOException {
        return request(opcode, fd, address, length, offset, opFlags, true);
    }

    /** As above; {@code direct} false for a request that only a ring can make as asked. */
    private int request(byte opcode, int fd, long address, int length, long offset, int opFlags, boolean direct)
            throws IOException {
        UringLoop loop = UringLoop.current();
        if (loop != null) {
            return loop.request(opcode, fd, address, length, offset, opFlags); // its own ring, on its own thread
        }
        checkNotBroken();
        try {
            if (active.getAndIncrement() == 0 && direct) {
                directRequests.increment();
                return (int) LinuxCalls.blocking(opcode, fd, address, length, offset);
            }
            return run(opcode, fd, address, length, offset, opFlags);
        } finally {
            active.decrementAndGet();
        }
    }

    /**
     * Runs one request and returns its result. The caller's thread waits for the completion even if
     * interrupted (the kernel may still be using the buffer); the interrupt status is kept.
     */
    private int run(byte opcode, int fd, long address, int length, long offset, int opFlags) throws IOException {
        checkNotBroken();
        inFlight.acquireUninterruptibly();
        try {
            Waiter waiter = new Waiter();
            int slot;
            submitLock.lock();
            try {
                slot = freeSlots[--freeCount];
                waiters.setRelease(slot, waiter);
                ring.prepare(opcode, fd, address, length, offset, opFlags, slot);
                prepared = prepared + 1;
            } finally {
                submitLock.unlock();
            }
            submitPrepared();
            awaitCompletion(waiter);
            if (broken == null) { // a request failed by fail() has no completion to time
                ringRequests.increment();
                nanosToCompletion.add(waiter.completedAt - waiter.preparedAt);
                nanosToResume.add(System.nanoTime() - waiter.completedAt);
            }
            // Back on a carrier: hand out what else has completed, so that those threads resume from here (a
            // local, cheap hand-off) rather than each through the completion thread.
            reapIfFree();
            submitLock.lock();
            try {
                waiters.setPlain(slot, null);
                freeSlots[freeCount++] = slot;
            } finally {
                submitLock.unlock();
            }
            return waiter.result;
        } finally {
            inFlight.release();
        }
    }

    /**
     * Submits what every thread has prepared, unless another thread is submitting: that one loops until
     * nothing is left, so a request prepared while it was in the kernel is not stranded.
     */
    private void submitPrepared() throws IOException {
        while (prepared > 0 && broken == null && submitting.compareAndSet(false, true)) {
            try {
                submitCalls.increment();
                long r = ring.enter(submitErrno, prepared, 0, 0);
                if (r > 0) {
                    submitLock.lock();
                    try {
                        prepared = prepared - (int) r;
                    } finally {
                        submitLock.unlock();
                    }
                } else if (r < 0 && !retryable(r)) {
                    fail(new IOException("io_uring_enter: " + LinuxCalls.strerror((int) -r)));
                }
            } finally {
                submitting.set(false);
            }
            reapIfFree(); // requests the kernel finished inline complete here, without a thread hand-off
        }
        checkNotBroken();
    }

    private void reapIfFree() {
        if (completeLock.tryLock()) {
            try {
                ring.reap(this::complete);
            } finally {
                completeLock.unlock();
            }
        }
    }

    private void complete(long userData, int result) {
        Waiter w = waiters.getAcquire((int) userData);
        if (w != null) {
            w.complete(result);
        }
    }

    private static void awaitCompletion(Waiter waiter) {
        boolean interrupted = false;
        while (!waiter.done) {
            LockSupport.park(waiter);
            interrupted |= Thread.interrupted();
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** The completion thread: waits in the kernel for any completion, then hands out all that are posted. */
    private void reapForever() {
        MemorySegment errno = LinuxCalls.errnoSegment(Arena.ofAuto());
        while (broken == null) {
            waitCalls.increment();
            long r = ring.enter(errno, 0, 1, IoUring.ENTER_GETEVENTS);
            if (r < 0 && !retryable(r)) {
                fail(new IOException("io_uring_enter (wait): " + LinuxCalls.strerror((int) -r)));
                return;
            }
            completeLock.lock();
            try {
                ring.reap(this::complete);
            } finally {
                completeLock.unlock();
            }
        }
    }

    private static boolean retryable(long r) {
        return r == -LinuxCalls.EINTR || r == -LinuxCalls.EAGAIN || r == -LinuxCalls.EBUSY;
    }

    /**
     * The ring refused a call it should never refuse: every waiting request fails with EIO rather than hang,
     * and later requests are refused. (Reached only through a bug or a kernel fault.) The kernel may still
     * complete, and so write into the buffers of, requests it had taken: the queue is dead after this, and
     * the process should not go on trusting buffers it handed to it.
     */
    private void fail(IOException e) {
        broken = e;
        for (int slot = 0; slot < capacity; slot++) {
            Waiter w = waiters.getAcquire(slot);
            if (w != null) {
                w.complete(-5); // no-op for one already completed
            }
        }
    }

    private void checkNotBroken() throws IOException {
        IOException e = broken;
        if (e != null) {
            throw new IOException("io_uring failed: " + e.getMessage(), e);
        }
    }
}
