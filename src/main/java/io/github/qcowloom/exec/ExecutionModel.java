package io.github.qcowloom.exec;

import io.github.qcowloom.api.AsyncBlockDevice;
import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.StorageBackend;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadFactory;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How requests run: {@code virtual} (a virtual thread per request, the design), {@code loop:N} (a virtual thread per
 * request on N io_uring event loops, each loop both the threads' scheduler and the owner of its ring, as QEMU's
 * AioContext is; virtual where loops cannot run, see {@link EventLoops}) or {@code pool:N} (a fixed pool of N
 * platform threads, the comparison variant). The driver's code is the same under all three; only the threads it
 * runs on differ. A profile's {@code auto} ({@link #resolve}) is {@code loop:1} for an image opened with O_DIRECT
 * through io_uring and {@code virtual} otherwise, the faster of each on the machine measured (README, Execution
 * models); an NBD server's ({@link #resolveForServer}) is {@code loop:1} through the page cache too.
 *
 * @param poolThreads the pool's size for {@code pool:N}, else 0
 * @param loops the number of event loops for {@code loop:N}, else 0
 */
public record ExecutionModel(int poolThreads, int loops) {
    private static final Pattern POOL = Pattern.compile("pool:([1-9][0-9]{0,3})");
    private static final Pattern LOOP = Pattern.compile("loop:([1-9][0-9]?)");
    private static final int MAX_POOL = 4096;
    private static final int MAX_LOOPS = 64;

    public static final ExecutionModel VIRTUAL = new ExecutionModel(0, 0);

    public ExecutionModel {
        if (poolThreads < 0 || poolThreads > MAX_POOL || loops < 0 || loops > MAX_LOOPS
                || (poolThreads > 0 && loops > 0)) {
            throw new IllegalArgumentException("pool threads " + poolThreads + ", loops " + loops);
        }
    }

    /** Parses {@code virtual}, {@code loop:N} (N from 1 to 64) or {@code pool:N} (N from 1 to 4096). */
    public static ExecutionModel parse(String text) {
        if ("virtual".equals(text)) {
            return VIRTUAL;
        }
        Matcher m = POOL.matcher(text);
        if (m.matches() && Integer.parseInt(m.group(1)) <= MAX_POOL) {
            return new ExecutionModel(Integer.parseInt(m.group(1)), 0);
        }
        m = LOOP.matcher(text);
        if (m.matches() && Integer.parseInt(m.group(1)) <= MAX_LOOPS) {
            return new ExecutionModel(0, Integer.parseInt(m.group(1)));
        }
        throw new IllegalArgumentException("execution model must be 'virtual', 'loop:N' (1.." + MAX_LOOPS
                + ") or 'pool:N' (1.." + MAX_POOL + "), not '" + text + "'");
    }

    /**
     * The model {@code execution} names, {@code auto} resolved for an image opened with O_DIRECT or not, through
     * {@code storage}: {@code loop:1} where the files go through io_uring with O_DIRECT (a loop's threads make
     * FileChannel calls on the loop's own thread, one at a time), else {@code virtual}.
     */
    public static ExecutionModel resolve(String execution, boolean direct, StorageBackend storage) {
        if ("auto".equals(execution)) {
            return direct && storage.resolve(true) == StorageBackend.IO_URING ? new ExecutionModel(0, 1) : VIRTUAL;
        }
        return parse(execution);
    }

    /**
     * The model {@code execution} names for a server's connections (NBD): {@code auto} is {@code loop:1} in both
     * modes wherever the files may go through io_uring ({@code storage} not {@code filechannel}; the caller then
     * opens them with io_uring), else {@code virtual}. Through the page cache too, a connection's reader then waits
     * for its socket in the loop's ring, and reads the cache holds and most writes are made on the loop's thread,
     * with no park (README, NBD: 4 KiB random reads at depth 64 1.7-2.0 times the JDK's scheduler's, writes
     * 1.05-1.3 times with one connection and 0.93 times with four, whose copies the JDK's scheduler spreads over
     * both cores).
     */
    public static ExecutionModel resolveForServer(String execution, StorageBackend storage) {
        return resolve(execution, true, storage); // the rule for O_DIRECT, in both modes
    }

    /** This model, or {@code virtual} for {@code loop:N} where loops cannot run here (the reason logged once). */
    public ExecutionModel effective() {
        return effective(false);
    }

    /**
     * As {@link #effective()}; with {@code chosenByAuto} the reason is logged at debug level only: a user who did
     * not ask for loops is not told that they could not run.
     */
    public ExecutionModel effective(boolean chosenByAuto) {
        return loops > 0 && EventLoops.threadFactory(loops, "qcow2-request", chosenByAuto) == null ? VIRTUAL : this;
    }

    /** True where the caller's thread runs the driver's code itself: {@code virtual} and {@code loop:N}. */
    public boolean runsOnCaller() {
        return poolThreads == 0;
    }

    /**
     * A factory of the threads that run requests under this model, named {@code name}: virtual threads, on the
     * event loops for {@code loop:N} where they can run; for {@code pool:N}, virtual threads that hand their
     * requests to the pool.
     */
    public ThreadFactory requestThreads(String name) {
        ThreadFactory onLoops = loops > 0 ? EventLoops.threadFactory(loops, name, false) : null;
        return onLoops != null ? onLoops : Thread.ofVirtual().name(name).factory();
    }

    public ExecutorService newExecutor() {
        return runsOnCaller() ? new VirtualThreadPerRequest(requestThreads("qcow2-request"))
                : Executors.newFixedThreadPool(poolThreads, Thread.ofPlatform().name("qcow2-pool-", 0).factory());
    }

    /** The device driven by a new executor of this model. */
    public AsyncBlockDevice drive(BlockDevice device) {
        return new AsyncBlockDevice(device, newExecutor());
    }

    @Override
    public String toString() {
        return loops > 0 ? "loop:" + loops : poolThreads == 0 ? "virtual" : "pool:" + poolThreads;
    }
}
