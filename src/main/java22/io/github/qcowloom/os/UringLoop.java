package io.github.qcowloom.os;

import io.github.qcowloom.exec.OwnSchedulerThreads;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An event loop as QEMU's AioContext is one: a platform thread that is at once the scheduler of the virtual threads
 * started on it and the only user of its own io_uring. A request on one of its threads prepares its SQE and parks;
 * when nothing is left to run, the loop submits what is prepared and waits for a completion in the same
 * {@code io_uring_enter}, then resumes the completed requests' threads itself. Submitting, reaping and the request's
 * own code so run on one thread, with no hand-off and no wake-up between them, as qemu-img's do. (The process's
 * shared queue, {@link UringQueue}, passes a completion through three threads: the submitter, the completion thread
 * and a carrier.)
 *
 * <p>The ring is set up {@code SINGLE_ISSUER | DEFER_TASKRUN}: the kernel runs its completion work when the loop
 * asks for completions, not by interrupting the loop while it runs Java. Submissions go to the kernel in batches
 * while threads are running (the device starts on them early) and all at once when the loop runs out of work.
 *
 * <p>Virtual threads a loop's thread starts inherit the loop (the JDK gives a child its parent's scheduler). Other
 * threads (platform threads, the JDK's timer and socket pollers) hand a thread to the loop through {@link #execute}:
 * a lock-free queue, plus an eventfd whose read always sits in the ring, written only when the loop sleeps.
 *
 * <p>Calls made on the loop's thread (cached reads, writes on the loop, a request alone, a socket's waiting bytes)
 * do not park, so a thread making one after another yields its turn every {@link #TURN_NANOS} while another thread
 * waits; the loop then looks at its ring before it runs the next thread, and queues the thread that yielded behind
 * the threads whose requests completed meanwhile. Without turns, one such thread kept every other thread of its
 * loop waiting for as long as it went on.
 *
 * <p>Lock discipline: no lock. The run queue is a {@link ConcurrentLinkedQueue}. {@code sleeping} and the queue
 * form a Dekker pair: the loop sets {@code sleeping} and then looks at the queue, a producer adds to the queue and
 * then looks at {@code sleeping}, so either the loop sees the task or the producer wakes it. Everything else (the
 * ring, the slots and their waiters, {@code prepared}, {@code inFlight}, {@code socketWaits}, {@code broken}, the
 * {@code errno} and {@code iovec} segments of the calls made on the loop's thread, {@code cachedReadsRefused},
 * {@code bufferedWrites}, {@code turnStart}, {@code turnYielded}, {@code yielding}, {@code heldContinuation},
 * {@code yieldCount}, {@code timingDraw}) is touched only on the loop's own thread: by the loop between tasks, and
 * by the requests running on it, since a virtual thread whose scheduler is this loop runs only here. A thread leaves
 * the loop only where it parks or yields its turn (after its call), so none comes between another's filling of a
 * segment and its call. {@code failed}, volatile, tells other threads that {@code broken} is set, or that the loop
 * stopped; {@code exiting}, volatile, set once by another thread, stops it ({@link #stopForExit}).
 */
final class UringLoop implements Executor {
    private static final Logger LOG = LoggerFactory.getLogger(UringLoop.class);
    private static final int ENTRIES = 256;
    /** Requests in flight at most: one SQE stays for the wake-up read, so neither ring can overflow. */
    static final int CAPACITY = ENTRIES - 1;
    /** The smallest batch of prepared requests submitted while threads still run ({@link #BATCH_SHIFT}). */
    private static final int MIN_BATCH = 2;
    /**
     * While threads are still running, prepared requests go to the kernel once they are an eighth of the requests
     * in flight (at least {@link #MIN_BATCH}), so the device starts on them before the loop runs out of work, in
     * batches that grow with the depth. 4 KiB O_DIRECT overwrites in alternating runs on the first loop
     * (2026-12-03), fixed batches: at depth 64, 1 made 94-111k, 4 155-163k, 8 161-167k, 16 163-187k, 32
     * 139-152k, only when out of work 127-132k; at depth 16, 1 made 77-89k, 2 111-129k, 4 98-138k, 16 87-89k. An
     * eighth against a quarter (2026-12-05, 4 KiB O_DIRECT reads at depth 64, 9 alternating pairs over two sets):
     * 112-119k against 104-114k, every pair ahead, requests 20-50 µs less in the queue; overwrites at depth 64,
     * reads and overwrites at 16 and 256, and NBD reads within the host's noise. A batch of 1 then made 167-171k
     * overwrites against the eighth's 154-170k (one set of 5), at 20-25% more CPU per I/O at depth 256.
     */
    private static final int BATCH_SHIFT = 3;
    /** preadv2's flag: answer from the page cache only, -EAGAIN where the read would wait for the disk. */
    private static final long RWF_NOWAIT = 8;
    /** Tasks run between two looks at the ring, so a thread that keeps yielding cannot hold back completions. */
    private static final int ROUND = 256;
    /**
     * How long a thread may keep the loop through calls made on the loop's thread before it yields its turn, when
     * another thread waits. Such calls (reads the page cache answers, writes made on the loop, a request alone, the
     * bytes a socket already holds) never park, so a thread that makes them one after another (a guest's device
     * thread, a bench guest) would otherwise keep every other thread of its loop from running, and the ring's
     * requests from being submitted and taken, for as long as it goes on. A turn costs a park and a resume, and
     * with many such threads each waits for the others' turns: 64 bench guests of 4 KiB cached reads on one loop
     * (3 alternating rounds of 3 000 000) lost 1-3% of their IOPS with turns of 500 µs, 4-5% with 200 µs and 5-10%
     * with 50 µs, where their p99 latency rose from 3 µs to 3.4 ms.
     */
    static final long TURN_NANOS = 500_000;
    private static final long WAKE_TAG = CAPACITY;
    /** What {@link #awaitSocket} answers when it has no room: not a result the kernel gives (-errno or bytes). */
    static final int NO_ROOM = Integer.MIN_VALUE;
    private static final MethodHandle CARRIER = carrierHandle();
    /**
     * One ring request in this many (a power of two) is timed for bench's means: three clock reads a request were
     * 3% of the loop's CPU at depth 64. Drawn at random, so that no period of the requests' order biases the means.
     */
    private static final int TIMED_ONE_IN = 16;

    // Counters for bench (UringQueue.sharedCounters), over every loop.
    static final LongAdder REQUESTS = new LongAdder();
    static final LongAdder DIRECT_REQUESTS = new LongAdder();
    static final LongAdder ENTER_CALLS = new LongAdder();
    static final LongAdder TIMED_REQUESTS = new LongAdder();
    static final LongAdder NANOS_TO_COMPLETION = new LongAdder();
    static final LongAdder NANOS_TO_RESUME = new LongAdder();

    private final ConcurrentLinkedQueue<Runnable> runnable = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean sleeping = new AtomicBoolean();
    /** Set once, for a process about to exit: the loop ends its thread ({@link #stopForExit}). */
    private volatile boolean exiting;
    private final Semaphore slots = new Semaphore(CAPACITY);
    private final Carrier carrier;
    private final int wakeFd;
    private IoUring ring; // set up by the carrier before it runs the loop; touched on the carrier only
    private final MemorySegment wakeBuffer = Arena.global().allocate(8, 8);
    private final MemorySegment errno = LinuxCalls.errnoSegment(Arena.global());
    private final MemorySegment iovec = Arena.global().allocate(16, 8); // preadv2's one struct iovec
    // The loop's thread only.
    private final Waiter[] waiters = new Waiter[CAPACITY];
    private final int[] freeSlots = new int[CAPACITY];
    private int freeCount = CAPACITY;
    private int prepared;
    private int timingDraw = 0x9E3779B9; // xorshift state for choosing the timed requests
    private int inFlight; // prepared or submitted, not yet completed (the wake-up read not counted)
    /**
     * Socket waits in the ring ({@link #awaitSocket}): not in {@code inFlight}, since one may last as long as a
     * client is idle and must neither turn the direct calls off nor raise the batches; at most half the slots
     * (checked and taken together, on the loop's thread, with no wait in between).
     */
    private int socketWaits;
    /** Set once a file here refused RWF_NOWAIT (a file system without it): reads then all go through the ring. */
    private boolean cachedReadsRefused;
    private final BufferedWrites bufferedWrites = new BufferedWrites(System.nanoTime());
    /** When the running thread made its first call on the loop's thread in this turn; 0 before it. */
    private long turnStart;
    /** The running thread yielded its turn: the loop looks at the ring before it runs the next thread. */
    private boolean turnYielded;
    /** The running thread is in {@code Thread.yield}: the next {@link #execute} on the loop's thread is its own. */
    private boolean yielding;
    /** The continuation of the thread that yielded its turn, queued once the loop has taken the completions. */
    private Runnable heldContinuation;
    /** Turns yielded so far (tests read it from a thread on the loop). */
    long yieldCount;
    private IOException broken;
    /**
     * {@code broken}, or the loop stopped, as other threads may read it: a failed loop takes no new threads
     * ({@link UringLoops}).
     */
    private volatile boolean failed;
    /** Tests only: run on the loop's thread when it has found nothing to run, before it says it sleeps. */
    volatile Runnable idleHook;

    /**
     * A request's completion: written by the loop, read by the request's thread, both on the loop's thread. Only a
     * timed one reads the clock.
     */
    private static final class Waiter {
        final Thread owner = Thread.currentThread();
        final boolean socket;
        final boolean timed;
        final long preparedAt;
        boolean done;
        int result;
        long completedAt;

        Waiter(boolean socket, boolean timed) {
            this.socket = socket;
            this.timed = timed;
            this.preparedAt = timed ? System.nanoTime() : 0;
        }
    }

    /** The loop's platform thread; {@link #current} knows a loop's virtual threads by it. */
    private static final class Carrier extends Thread {
        private final UringLoop loop;
        private final CompletableFuture<Void> started = new CompletableFuture<>();

        Carrier(UringLoop loop, String name) {
            super(null, null, name, 0, false);
            this.loop = loop;
            setDaemon(true);
        }

        @Override
        public void run() {
            try {
                // SINGLE_ISSUER: the thread that sets the ring up is the only one that may enter it.
                try {
                    loop.ring = IoUring.create(ENTRIES, IoUring.SETUP_SINGLE_ISSUER | IoUring.SETUP_DEFER_TASKRUN);
                } catch (IOException beforeLinux61) {
                    loop.ring = IoUring.create(ENTRIES); // completion work by interrupting the loop: slower, right
                }
            } catch (Throwable e) { // an Error too (a native call's set-up refused): the constructor must not wait on
                started.completeExceptionally(e);
                return;
            }
            started.complete(null);
            loop.run();
        }
    }

    /**
     * Starts a loop on a new daemon thread named {@code name}; throws if its ring cannot be set up (the thread then
     * ends, and nothing stays open).
     */
    UringLoop(String name) throws IOException {
        for (int i = 0; i < CAPACITY; i++) {
            freeSlots[i] = i;
        }
        this.wakeFd = EventFds.create();
        this.carrier = new Carrier(this, name); // Thread.start publishes the fields set so far to it
        carrier.start();
        try {
            carrier.started.join();
        } catch (CompletionException e) {
            EventFds.close(wakeFd);
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) {
                throw io;
            }
            throw new IOException(cause.toString(), cause);
        }
    }

    private static MethodHandle carrierHandle() {
        try {
            return MethodHandles.privateLookupIn(Thread.class, MethodHandles.lookup())
                    .findStatic(Thread.class, "currentCarrierThread", MethodType.methodType(Thread.class));
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null; // java.lang not opened to us: no thread can be on a loop either
        }
    }

    /** Null if this JVM lets loops find their threads, else what it lacks. */
    static String unavailableReason() {
        return CARRIER == null ? OwnSchedulerThreads.addOpensReason() : null;
    }

    /** The loop that runs the calling thread, or null if it runs elsewhere. */
    static UringLoop current() {
        if (CARRIER == null) {
            return null;
        }
        try {
            return ((Thread) CARRIER.invokeExact()) instanceof Carrier c ? c.loop : null;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** Runs {@code task} (a virtual thread's continuation) on the loop; from any thread. */
    @Override
    public void execute(Runnable task) {
        if (Thread.currentThread() == carrier && yielding) { // the carrier first: others never read yielding
            // The yielding thread's own continuation, handed in as it unmounts: held back so that the threads
            // whose requests the loop is about to take run before its next turn, not after it.
            yielding = false;
            heldContinuation = task;
            return;
        }
        runnable.add(task);
        if (sleeping.get() && sleeping.compareAndSet(true, false)) {
            try {
                EventFds.signal(wakeFd);
            } catch (IOException e) {
                // The descriptor is ours and open: not reached. Not thrown either: the task is queued, and a
                // caller told otherwise would count it as never run.
                LOG.error("{}: could not wake the loop", carrier.getName(), e);
            }
        }
    }

    /**
     * One request, from a thread this loop runs: prepares its SQE and parks until the loop hands it the result
     * (bytes, 0, or -errno). Waits for the completion even if interrupted (the kernel may still use the buffer);
     * the interrupt status is kept. A read or write alone on the loop (nothing in flight, nothing else to run) makes
     * its system call directly instead, as the shared queue's does: one call and no ring round trip (4 KiB O_DIRECT
     * writes at depth 1: 26-27k against 19-21k). A thread handed in meanwhile waits for that one call. A flush or an
     * fallocate, which can take milliseconds, always goes through the ring, so the loop runs on meanwhile.
     */
    int request(byte opcode, int fd, long address, int length, long offset, int opFlags) throws IOException {
        if (inFlight == 0 && (opcode == IoUring.OP_READ || opcode == IoUring.OP_WRITE) && runnable.isEmpty()) {
            checkNotBroken();
            DIRECT_REQUESTS.increment();
            int result = (int) LinuxCalls.blocking(errno, opcode, fd, address, length, offset);
            yieldIfTurnSpent(System.nanoTime()); // socket waits may be in the ring
            return result;
        }
        slots.acquireUninterruptibly();
        return submitHoldingSlot(opcode, fd, address, length, offset, opFlags, false);
    }

    /**
     * A read of a file opened without O_DIRECT, from a thread this loop runs. What the page cache holds of the
     * range is read at once on the loop's thread (preadv2 with RWF_NOWAIT, which does not wait for the disk's
     * data, though on a miss it may start the readahead); the rest, if any, as {@link #request}. A read the cache
     * answers so costs one system call and no park, where the ring costs a park, a submission, a completion and a
     * resume (bench, 4 KiB page-cache reads at depth 64 on {@code loop:1}: 833-848k against 467-471k, and half the
     * CPU per read of the JDK's scheduler with FileChannel).
     */
    int readBuffered(int fd, long address, int length, long offset) throws IOException {
        checkNotBroken();
        if (cachedReadsRefused) {
            return request(IoUring.OP_READ, fd, address, length, offset, 0);
        }
        iovec.set(ValueLayout.JAVA_LONG, 0, address);
        iovec.set(ValueLayout.JAVA_LONG, 8, length);
        int cached = (int) LinuxCalls.syscall(errno, SyscallNumbers.PREADV2, fd, iovec.address(), 1, offset, 0,
                RWF_NOWAIT);
        if (cached == -LinuxCalls.EOPNOTSUPP) {
            cachedReadsRefused = true;
        }
        if (cached < 0) { // -EAGAIN: not cached; or an error, which the ring's read reports again
            return request(IoUring.OP_READ, fd, address, length, offset, 0);
        }
        DIRECT_REQUESTS.increment();
        yieldIfTurnSpent(System.nanoTime());
        if (cached == length || cached == 0) { // all of it, or the end of the file
            return cached;
        }
        // The cache held the range's start: the rest is read here too, and an error there is the read's error.
        int rest = request(IoUring.OP_READ, fd, address + cached, length - cached, offset + cached, 0);
        return rest < 0 ? rest : cached + rest;
    }

    /**
     * A write to a file opened without O_DIRECT, from a thread this loop runs: made on the loop's thread or through
     * the ring (never directly, even alone), as {@link BufferedWrites} decides.
     */
    int writeBuffered(int fd, long address, int length, long offset) throws IOException {
        checkNotBroken();
        long start = System.nanoTime();
        if (!bufferedWrites.onLoop(offset, length, start)) {
            bufferedWrites.toRing();
            try { // through the ring even when alone: the policy keeps it off the loop's thread
                slots.acquireUninterruptibly();
                return submitHoldingSlot(IoUring.OP_WRITE, fd, address, length, offset, 0, false);
            } finally {
                bufferedWrites.backFromRing();
            }
        }
        int written = (int) LinuxCalls.blocking(errno, IoUring.OP_WRITE, fd, address, length, offset);
        DIRECT_REQUESTS.increment();
        long end = System.nanoTime();
        if (bufferedWrites.took(start, end - start, length)) {
            LOG.debug("{}: a buffered write was held up; writes go through the ring for {} ms", carrier.getName(),
                    bufferedWrites.backoff() / 1_000_000);
        }
        yieldIfTurnSpent(end);
        return written;
    }

    /**
     * After a call made on the loop's thread (at {@code now}), from the thread this loop runs: yields the thread's
     * turn once its calls have kept the loop {@link #TURN_NANOS} and others wait, so they run and the ring is
     * looked at before this thread goes on. Called only once the call's result is taken from the loop's
     * {@code errno} and {@code iovec} segments: another thread may use them meanwhile.
     */
    void yieldIfTurnSpent(long now) {
        if (turnStart == 0) {
            turnStart = now;
        } else if (now - turnStart > TURN_NANOS && othersWait()) {
            turnStart = now; // a new turn, should the yield not unmount the thread (pinned)
            turnYielded = true;
            yieldCount++;
            yielding = true;
            try {
                Thread.yield();
            } finally {
                yielding = false; // already, if it unmounted; else (pinned, or the yield threw) nothing was held back
            }
        }
    }

    /** Another thread is ready to run, or waits for the ring, which only the loop moves on. */
    private boolean othersWait() {
        return !runnable.isEmpty() || ringHasWork();
    }

    /** Requests prepared and not submitted, or submitted and not completed. */
    private boolean ringHasWork() {
        return prepared > 0 || inFlight > 0 || socketWaits > 0;
    }

    /** The errno capture of system calls made on this loop's thread (by it, or by a thread it runs). */
    MemorySegment errno() {
        return errno;
    }

    /**
     * A socket operation that may wait for the peer ({@code OP_RECV}, {@code OP_POLL_ADD}), from a thread this loop
     * runs: as {@link #request}, but never made directly and not counted in flight. Returns {@link #NO_ROOM} at
     * once, without waiting for a slot, when socket waits hold half the slots already (or no slot is free): the
     * caller then waits as it would elsewhere, so that idle clients never take the slots its file requests need.
     */
    int awaitSocket(byte opcode, int fd, long address, int length, int opFlags) throws IOException {
        if (socketWaits >= CAPACITY / 2 || !slots.tryAcquire()) {
            return NO_ROOM;
        }
        return submitHoldingSlot(opcode, fd, address, length, 0, opFlags, true);
    }

    /** Prepares the request in a slot the caller has taken from {@code slots}, and waits for its result. */
    private int submitHoldingSlot(byte opcode, int fd, long address, int length, long offset, int opFlags,
            boolean socket) throws IOException {
        try {
            checkNotBroken();
            Waiter w = new Waiter(socket, !socket && drawTimed());
            int slot = freeSlots[--freeCount];
            waiters[slot] = w;
            ring.prepare(opcode, fd, address, length, offset, opFlags, slot);
            prepared++;
            if (socket) {
                socketWaits++;
            } else {
                inFlight++;
            }
            boolean interrupted = false;
            while (!w.done) {
                LockSupport.park(this);
                interrupted |= Thread.interrupted();
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            waiters[slot] = null;
            freeSlots[freeCount++] = slot;
            if (!socket) {
                REQUESTS.increment();
                if (w.timed) {
                    TIMED_REQUESTS.increment();
                    NANOS_TO_COMPLETION.add(w.completedAt - w.preparedAt);
                    NANOS_TO_RESUME.add(System.nanoTime() - w.completedAt);
                }
            }
            return w.result;
        } finally {
            slots.release();
        }
    }

    /** True for about one call in {@link #TIMED_ONE_IN}; on the loop's thread. */
    private boolean drawTimed() {
        int x = timingDraw;
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        timingDraw = x;
        return (x & (TIMED_ONE_IN - 1)) == 0;
    }

    private void run() {
        armWake();
        while (!exiting) {
            try {
                runOnce();
            } catch (Throwable e) { // the ring's calls failing (not expected): its threads must not stay parked
                if (broken == null) {
                    fail(new IOException(carrier.getName() + " failed: " + e, e));
                } else {
                    LOG.error("{} failed again", carrier.getName(), e);
                }
            }
        }
    }

    /** Runs a round of ready threads, submits what they prepared, and takes the completions, waiting if idle. */
    private void runOnce() {
        Runnable task = null;
        for (int i = 0; i < ROUND && (task = runnable.poll()) != null; i++) {
            turnStart = 0;
            try {
                task.run();
            } catch (Throwable e) { // a continuation does not throw; keep the loop alive if one does
                LOG.error("a task on {} failed", carrier.getName(), e);
            }
            if (turnYielded) { // it ran long: what others prepared goes in, what completed comes out first
                turnYielded = false;
                try {
                    if (ringHasWork()) {
                        submitAndReap();
                    }
                } finally {
                    Runnable yielded = heldContinuation;
                    if (yielded != null) {
                        heldContinuation = null;
                        runnable.add(yielded);
                    }
                }
            } else if (prepared >= Math.max(MIN_BATCH, inFlight >> BATCH_SHIFT)) {
                enter(0, 0);
            }
        }
        if (task == null) {
            Runnable hook = idleHook;
            if (hook != null) {
                hook.run(); // tests: a hand-in after the queue was found empty, before sleeping is said
            }
            sleeping.set(true);
            // The second look: a hand-in since the poll saw sleeping unset, and woke nobody. An exit set after
            // this look still ends the wait: through the wake-up read armed in the ring, or, the ring broken, as
            // the wait is then a 1 ms park.
            if (runnable.isEmpty() && !exiting) {
                enter(1, IoUring.ENTER_GETEVENTS);
                sleeping.set(false);
                ring.reap(this::complete);
                return;
            }
            sleeping.set(false);
        }
        submitAndReap(); // more to run
    }

    /** Submits what is prepared and takes what has completed, without waiting. */
    private void submitAndReap() {
        enter(0, IoUring.ENTER_GETEVENTS);
        ring.reap(this::complete);
    }

    /** Submits everything prepared and, with GETEVENTS, waits until {@code minComplete} completions are posted. */
    private void enter(int minComplete, int flags) {
        if (broken != null) {
            if (minComplete > 0) {
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(1)); // the ring is dead: poll the queue
            }
            return;
        }
        ENTER_CALLS.increment();
        long r = ring.enter(errno, prepared, minComplete, flags);
        if (r > 0) {
            prepared -= (int) r;
        } else if (r < 0 && r != -LinuxCalls.EINTR && r != -LinuxCalls.EAGAIN && r != -LinuxCalls.EBUSY) {
            fail(new IOException("io_uring_enter: " + LinuxCalls.strerror((int) -r)));
        }
    }

    private void armWake() {
        ring.prepare(IoUring.OP_READ, wakeFd, wakeBuffer.address(), 8, 0, 0, WAKE_TAG);
        prepared++;
    }

    private void complete(long userData, int result) {
        if (userData == WAKE_TAG) {
            if (broken == null) {
                armWake();
            }
            return;
        }
        Waiter w = waiters[(int) userData];
        if (w != null && !w.done) {
            settle(w);
            w.result = result;
            if (w.timed) {
                w.completedAt = System.nanoTime();
            }
            w.done = true;
            LockSupport.unpark(w.owner);
        }
    }

    /**
     * The ring refused a call it should never refuse (a bug or a kernel fault): every waiting request fails with
     * EIO and later ones are refused, and the loop goes on running its threads without a ring. As with the shared
     * queue's failure, the kernel may still complete, and so use the buffers of, requests it had taken.
     */
    private void fail(IOException e) {
        LOG.error("{}: the io_uring failed; its requests fail from now on", carrier.getName(), e);
        broken = e;
        failed = true;
        long now = System.nanoTime();
        for (Waiter w : waiters) {
            if (w != null && !w.done) {
                settle(w);
                w.result = -5;
                w.completedAt = now;
                w.done = true;
                LockSupport.unpark(w.owner);
            }
        }
    }

    /** A waiter no longer waits on the ring. */
    private void settle(Waiter w) {
        if (w.socket) {
            socketWaits--;
        } else {
            inFlight--;
        }
    }

    /**
     * Ends the loop's thread, for a process about to exit, once nothing uses the loop: the JVM waits at exit for
     * every thread in a native call, up to 300 ms, and an idle loop waits in io_uring_enter. Its virtual threads
     * never run again.
     */
    void stopForExit() {
        if (exiting) {
            return; // stopped already; only UringLoops calls this, under its lock
        }
        exiting = true;
        failed = true; // new threads go elsewhere (UringLoops.threadFactory): they would never run here
        try {
            EventFds.signal(wakeFd);
        } catch (IOException e) {
            LOG.error("{}: could not wake the loop", carrier.getName(), e);
        }
        Joins.briefly(carrier);
    }

    /** True once the ring has failed or the loop stopped; from any thread. */
    boolean failed() {
        return failed;
    }

    /** Tests only: fails the ring as a refused call would, on the loop's thread. */
    void failForTests() {
        execute(() -> fail(new IOException("failed by a test")));
    }

    private void checkNotBroken() throws IOException {
        IOException e = broken;
        if (e != null) {
            throw new IOException("io_uring failed: " + e.getMessage(), e);
        }
    }
}
