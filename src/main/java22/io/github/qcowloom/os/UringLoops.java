package io.github.qcowloom.os;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executor;
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
    private static final Constructor<?> BUILDER = builderConstructor();

    private UringLoops() {
    }

    private static Constructor<?> builderConstructor() {
        try {
            Class<?> c = Class.forName("java.lang.ThreadBuilders$VirtualThreadBuilder");
            Constructor<?> k = c.getDeclaredConstructor(Executor.class);
            k.setAccessible(true);
            return k;
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null; // java.lang not opened to us
        }
    }

    /**
     * A factory of virtual threads named {@code name}, spread in turn over the first {@code n} loops of the
     * process (started now if fewer run). Throws, with the reason, where loops cannot run: java.lang not opened to
     * this code, or io_uring refused.
     */
    public static ThreadFactory threadFactory(int n, String name) throws IOException {
        if (n < 1) {
            throw new IllegalArgumentException("loops " + n);
        }
        String reason = BUILDER == null ? "the JVM needs --add-opens java.base/java.lang=ALL-UNNAMED"
                : UringLoop.unavailableReason();
        if (reason == null) {
            reason = LinuxCalls.unsupportedReason();
        }
        if (reason != null) {
            throw new IOException("virtual threads on io_uring event loops cannot run here: " + reason);
        }
        ThreadFactory[] factories = new ThreadFactory[n];
        LOCK.lock();
        try {
            while (loops.size() < n) {
                loops.add(new UringLoop("qcow2-loom-loop-" + loops.size()));
            }
            for (int i = 0; i < n; i++) {
                factories[i] = ((Thread.Builder.OfVirtual) BUILDER.newInstance(loops.get(i))).name(name).factory();
            }
        } catch (InstantiationException | IllegalAccessException | InvocationTargetException e) {
            throw new IOException("cannot build virtual threads on an event loop: " + e, e);
        } finally {
            LOCK.unlock();
        }
        AtomicInteger next = new AtomicInteger();
        return task -> factories[Math.floorMod(next.getAndIncrement(), n)].newThread(task);
    }
}
