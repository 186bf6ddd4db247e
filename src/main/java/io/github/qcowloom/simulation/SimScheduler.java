package io.github.qcowloom.simulation;

import io.github.qcowloom.api.Ticker;
import io.github.qcowloom.exec.OwnSchedulerThreads;
import java.util.ArrayList;
import java.util.List;
import java.util.PriorityQueue;
import java.util.SplittableRandom;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A deterministic scheduler for virtual threads: one carrier (the thread that calls {@link #runUntil}), and at every
 * step the next runnable continuation is picked by a seeded random number generator. Virtual threads yield to it
 * wherever they park (locks, futures, joins) and wherever the code under test calls {@link #yieldPoint} (the
 * {@link SimStorage} does at every I/O). Time is virtual: {@link #nanoTime()} advances one microsecond a step, and
 * when nothing is runnable it jumps to the earliest sleeper's deadline. The same seed therefore replays the same
 * interleaving, whatever the machine's speed.
 *
 * <p>Threads started here inherit the scheduler: a virtual thread that one of them creates with
 * {@code Thread.ofVirtual()} (the cluster pool's allocator, say) runs here too.
 *
 * <p>Needs {@code --add-opens java.base/java.lang=ALL-UNNAMED}: the JDK's builder that takes a scheduler is not
 * public ({@link OwnSchedulerThreads}).
 *
 * <p>Lock discipline: {@link #lock} guards the run queue, the sleepers and the trace; it is held only for those
 * collections, never while a continuation runs, so continuations submitting work from the carrier never wait.
 * Submissions from threads other than the carrier are counted ({@link #foreignSubmissions()}): they come from
 * outside the simulation and make a schedule depend on real time.
 */
public final class SimScheduler implements Executor, Ticker {
    /**
     * The scheduler a thread belongs to: set for the threads {@link #start} starts and inherited by the virtual
     * threads they create (which run on this scheduler too, as the JDK gives a child its parent's scheduler).
     */
    private static final InheritableThreadLocal<SimScheduler> OWNER = new InheritableThreadLocal<>();
    /** Virtual nanoseconds a step takes. */
    private static final long STEP_NANOS = TimeUnit.MICROSECONDS.toNanos(1);

    private final SplittableRandom random;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition submitted = lock.newCondition();
    // Guarded by lock.
    private final List<Runnable> runnable = new ArrayList<>();
    private final PriorityQueue<Sleeper> sleepers = new PriorityQueue<>();
    private final List<Thread> threads = new ArrayList<>();
    private final List<Throwable> failures = new ArrayList<>();
    private long sleeperSeq;
    private long foreignSubmissions;
    /** The carrier while {@link #runUntil} runs. */
    private volatile Thread carrier;
    private volatile long now;
    private long steps;
    /** A hash of every choice made, which identifies the interleaving. */
    private long scheduleHash = 0xcbf29ce484222325L;

    private record Sleeper(long deadline, long seq, Thread thread) implements Comparable<Sleeper> {
        @Override
        public int compareTo(Sleeper o) {
            int c = Long.compare(deadline, o.deadline);
            return c != 0 ? c : Long.compare(seq, o.seq);
        }
    }

    /** A scheduler whose choices follow {@code seed}. */
    public SimScheduler(long seed) {
        this.random = new SplittableRandom(seed);
    }

    /** True when this JVM lets the explorer build virtual threads on its own scheduler. */
    public static boolean available() {
        return OwnSchedulerThreads.unavailableReason() == null;
    }

    /** A thread's work; what it throws becomes the run's failure. */
    @FunctionalInterface
    public interface Task {
        void run() throws Exception;
    }

    /**
     * Starts a virtual thread named {@code name} on this scheduler; it runs once {@link #runUntil} picks it. An
     * exception it throws is kept as a failure of the run ({@link #failures()}).
     */
    public Thread start(String name, Task task) {
        String missing = OwnSchedulerThreads.unavailableReason();
        if (missing != null) {
            throw new UnsupportedOperationException("The interleaving explorer cannot build virtual threads on its own"
                    + " scheduler: " + missing);
        }
        Thread t = OwnSchedulerThreads.builder(this).name(name).unstarted(() -> {
            OWNER.set(this);
            try {
                task.run();
            } catch (Throwable e) {
                lock.lock();
                try {
                    failures.add(e);
                } finally {
                    lock.unlock();
                }
            }
        });
        lock.lock();
        try {
            threads.add(t);
        } finally {
            lock.unlock();
        }
        t.start();
        return t;
    }

    /** Called by the JDK whenever one of our virtual threads becomes runnable. */
    @Override
    public void execute(Runnable continuation) {
        lock.lock();
        try {
            if (carrier != null && Thread.currentThread() != carrier && !owns(Thread.currentThread())) {
                foreignSubmissions++;
            }
            runnable.add(continuation);
            submitted.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** True if {@code t} is the current thread and runs on this scheduler (started here, or by a thread that was). */
    private boolean owns(Thread t) {
        return t == Thread.currentThread() && t.isVirtual() && OWNER.get() == this;
    }

    /** True when the calling thread is one of this simulation's. */
    public boolean inSimulation() {
        return carrier != null && owns(Thread.currentThread());
    }

    /**
     * A point where the calling thread lets the scheduler choose who runs next (it may be the caller again). A no-op
     * outside a thread of this scheduler.
     */
    public void yieldPoint() {
        if (inSimulation()) {
            Thread.yield();
        }
    }

    @Override
    public long nanoTime() {
        return now;
    }

    /**
     * Parks the calling thread of this scheduler for {@code nanos} of virtual time, or until unparked; a thread
     * outside the simulation parks in real time.
     */
    @Override
    public void parkNanos(long nanos) {
        if (nanos <= 0) {
            return;
        }
        if (!inSimulation()) {
            LockSupport.parkNanos(nanos);
            return;
        }
        Sleeper sleeper;
        lock.lock();
        try {
            sleeper = new Sleeper(now + nanos, sleeperSeq++, Thread.currentThread());
            sleepers.add(sleeper);
        } finally {
            lock.unlock();
        }
        LockSupport.park();
        // Woken early (an unpark): the deadline no longer wakes anyone, so it must not move time or wake us later.
        lock.lock();
        try {
            sleepers.remove(sleeper);
        } finally {
            lock.unlock();
        }
    }

    /** Sleeps {@code nanos} of virtual time (a slow disk, say); unparks before the deadline are ignored. */
    public void sleep(long nanos) {
        if (!inSimulation()) {
            LockSupport.parkNanos(nanos);
            return;
        }
        long until = now + nanos;
        while (now < until) {
            parkNanos(until - now);
        }
    }

    /** A random number from this scheduler's seeded sequence, for callers inside the simulation. */
    public int nextInt(int bound) {
        lock.lock();
        try {
            return random.nextInt(bound);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Runs the simulation on the calling thread until {@code done} has terminated. Returns normally then; throws
     * {@link SimulationStuckException} when every thread waits and no sleeper can wake (a deadlock or lost wake-up),
     * or when {@code maxSteps} pass first (a livelock).
     */
    public void runUntil(Thread done, long maxSteps) {
        carrier = Thread.currentThread();
        try {
            while (done.isAlive()) {
                Runnable next = nextRunnable(done);
                if (next == null) {
                    continue;
                }
                if (++steps > maxSteps) {
                    throw new SimulationStuckException("no progress after " + maxSteps + " steps (a livelock?)",
                            liveThreads());
                }
                now += STEP_NANOS;
                next.run();
            }
        } finally {
            carrier = null;
        }
    }

    /** The next continuation to run, or null when a sleeper was woken or {@code done} ended meanwhile. */
    private Runnable nextRunnable(Thread done) {
        lock.lock();
        try {
            if (!runnable.isEmpty()) {
                int i = runnable.size() == 1 ? 0 : random.nextInt(runnable.size());
                scheduleHash = ((scheduleHash ^ i) * 0x100000001b3L ^ runnable.size()) * 0x100000001b3L;
                return runnable.remove(i);
            }
            Sleeper s = sleepers.poll();
            if (s != null) {
                now = Math.max(now, s.deadline());
                LockSupport.unpark(s.thread());
                return null;
            }
            // Nothing runnable and nobody asleep: a thread outside the simulation may still hand us work (it makes
            // the run depend on real time, and is counted); otherwise everyone waits for everyone.
            if (!done.isAlive()) {
                return null;
            }
            submitted.await(2, TimeUnit.SECONDS);
            if (runnable.isEmpty() && done.isAlive()) {
                throw new SimulationStuckException("every thread of the simulation waits and none can wake"
                        + " (a deadlock or a lost wake-up)", liveThreads());
            }
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SimulationStuckException("interrupted", liveThreads());
        } finally {
            lock.unlock();
        }
    }

    /** The threads of this simulation still alive, with where each waits. */
    String liveThreads() {
        StringBuilder b = new StringBuilder();
        List<Thread> all;
        lock.lock();
        try {
            all = List.copyOf(threads);
        } finally {
            lock.unlock();
        }
        for (Thread t : all) {
            if (!t.isAlive()) {
                continue;
            }
            b.append("  ").append(t.getName()).append(" ").append(t.getState()).append('\n');
            StackTraceElement[] stack = t.getStackTrace();
            for (int i = 0; i < Math.min(stack.length, 14); i++) {
                b.append("      at ").append(stack[i]).append('\n');
            }
        }
        return b.toString();
    }

    /** What threads started here threw, in the order they threw it. */
    public List<Throwable> failures() {
        lock.lock();
        try {
            return List.copyOf(failures);
        } finally {
            lock.unlock();
        }
    }

    /** Steps run so far. */
    public long steps() {
        return steps;
    }

    /** Identifies the interleaving run so far: equal schedules give equal hashes. */
    public long scheduleHash() {
        return scheduleHash;
    }

    /** Continuations submitted by threads outside the simulation (0 for a fully deterministic run). */
    public long foreignSubmissions() {
        lock.lock();
        try {
            return foreignSubmissions;
        } finally {
            lock.unlock();
        }
    }
}
