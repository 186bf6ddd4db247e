package io.github.qcowloom.os;

import io.github.qcowloom.exec.OwnSchedulerThreads;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The process's event loops ({@link UringLoop}), started as executors first ask for them and kept for the life of
 * the process, as the JDK keeps its default scheduler: a loop with nothing to do sleeps in the kernel, and a
 * virtual thread that a request started on a loop (a background allocator, say) may outlive the executor that
 * asked.
 *
 * <p>Lock discipline: {@code LOCK} guards {@code loops} and the set-up of new ones.
 */
public final class UringLoops {
    private static final ReentrantLock LOCK = new ReentrantLock();
    private static final List<UringLoop> loops = new ArrayList<>(); // guarded by LOCK

    private UringLoops() {
    }

    /**
     * A factory of virtual threads named {@code name} on the first {@code n} loops of the process (started now if
     * fewer run): a thread started from one of them stays on its loop, others go round them in turn. Throws, with
     * the reason, where loops cannot run: Java before 24, java.lang not opened to this code, or io_uring refused.
     */
    public static ThreadFactory threadFactory(int n, String name) throws IOException {
        if (n < 1) {
            throw new IllegalArgumentException("loops " + n);
        }
        String reason = javaVersionReason(Runtime.version().feature());
        if (reason == null) {
            reason = OwnSchedulerThreads.unavailableReason();
        }
        if (reason == null) {
            reason = UringLoop.unavailableReason();
        }
        if (reason == null) {
            reason = LinuxCalls.unsupportedReason();
        }
        if (reason != null) {
            throw new IOException("virtual threads on io_uring event loops cannot run here: " + reason);
        }
        ThreadFactory[] factories = new ThreadFactory[n];
        UringLoop[] mine = new UringLoop[n];
        LOCK.lock();
        try {
            if (loops.isEmpty() && !"1".equals(System.getProperty("jdk.pollerMode"))) {
                startJdkPollersElsewhere();
            }
            while (loops.size() < n) {
                loops.add(new UringLoop("qcow2-loom-loop-" + loops.size()));
            }
            for (int i = 0; i < n; i++) {
                factories[i] = OwnSchedulerThreads.builder(loops.get(i)).name(name).factory();
                mine[i] = loops.get(i);
            }
        } catch (RuntimeException | LinkageError e) { // e.g. native access refused: the caller falls back
            throw new IOException("virtual threads on io_uring event loops cannot run here: " + e, e);
        } finally {
            LOCK.unlock();
        }
        AtomicInteger next = new AtomicInteger();
        ThreadFactory jdkScheduler = Thread.ofVirtual().name(name).factory();
        return task -> {
            // A thread started from one of these loops stays on it (an NBD connection's requests beside their
            // reader); others go round the loops in turn. A loop whose ring failed takes no new thread: it would
            // only fail the thread's requests. Where every loop failed, threads run on the JDK's scheduler, and
            // their requests go through the process's shared ring.
            UringLoop here = UringLoop.current();
            for (int i = 0; i < n; i++) {
                if (mine[i] == here && !here.failed()) {
                    return factories[i].newThread(task);
                }
            }
            int first = next.getAndIncrement();
            for (int k = 0; k < n; k++) {
                int i = Math.floorMod(first + k, n);
                if (!mine[i].failed()) {
                    return factories[i].newThread(task);
                }
            }
            return jdkScheduler.newThread(task);
        };
    }

    /**
     * Ends the process's loops and its shared queue's completion thread, for a process about to exit, once nothing
     * uses them: the JVM waits at exit up to 300 ms for every thread in a native call, and idle rings wait in
     * io_uring_enter.
     */
    public static void stopForExit() {
        LOCK.lock();
        try {
            for (UringLoop loop : loops) {
                loop.stopForExit();
            }
        } finally {
            LOCK.unlock();
        }
        UringQueue.stopForExit();
    }

    /**
     * Null from Java 24 on, else why loops are refused. Before 24 a virtual thread in synchronized code or in
     * Object.wait holds its carrier (JEP 491 ended that), and a loop's threads have one carrier, the loop: a request
     * made there would park the loop itself, and nothing would be left to take its completion.
     */
    static String javaVersionReason(int feature) {
        return feature >= 24 ? null
                : "they need Java 24 or later, where synchronized code does not hold a virtual thread's carrier "
                        + "(running Java " + feature + ")";
    }

    /**
     * In its default mode on Linux the JDK starts its socket pollers as virtual threads from whichever thread first
     * waits on a socket, and a virtual thread's children take its scheduler. Were that thread on a loop, every
     * socket wake-up of the process would run through the loop, and wait while it runs a request or makes a direct
     * call. Initialising the poller class on a platform thread before any loop runs starts them on the JDK's
     * scheduler. With {@code -Djdk.pollerMode=1}, as the CLI runs, they are platform threads anyway, and are left
     * to start with the first socket: they wait in epoll_wait, a native call, for as long as they live, and the JVM
     * waits up to 300 ms at exit for such threads (see {@link #stopForExit}).
     */
    private static void startJdkPollersElsewhere() {
        Thread t = Thread.ofPlatform().name("qcow2-loom-poller-start").start(() -> {
            try {
                Class.forName("sun.nio.ch.Poller", true, null);
            } catch (ClassNotFoundException | LinkageError e) {
                // Another JDK's layout: nothing started here, and nothing else to do.
            }
        });
        Joins.uninterruptibly(t);
    }
}
