package io.github.qcowloom.exec;

import io.github.qcowloom.api.AsyncBlockDevice;
import io.github.qcowloom.api.BlockDevice;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How requests run: {@code virtual} (a virtual thread per request, the design) or {@code pool:N} (a fixed pool of N
 * platform threads, the comparison variant). The driver's code is the same under both; only the executor differs.
 */
public record ExecutionModel(int poolThreads) {
    private static final Pattern POOL = Pattern.compile("pool:(\\d+)");

    public static final ExecutionModel VIRTUAL = new ExecutionModel(0);

    public ExecutionModel {
        if (poolThreads < 0) {
            throw new IllegalArgumentException("pool threads " + poolThreads);
        }
    }

    /** Parses {@code virtual} or {@code pool:N} (N from 1 to 4096). */
    public static ExecutionModel parse(String text) {
        if ("virtual".equals(text)) {
            return VIRTUAL;
        }
        Matcher m = POOL.matcher(text);
        if (m.matches()) {
            int n = Integer.parseInt(m.group(1));
            if (n >= 1 && n <= 4096) {
                return new ExecutionModel(n);
            }
        }
        throw new IllegalArgumentException("execution model must be 'virtual' or 'pool:N' (1..4096), not '" + text
                + "'");
    }

    public boolean virtual() {
        return poolThreads == 0;
    }

    public ExecutorService newExecutor() {
        return virtual() ? new VirtualThreadPerRequest()
                : Executors.newFixedThreadPool(poolThreads, Thread.ofPlatform().name("qcow2-pool-", 0).factory());
    }

    /** The device driven by a new executor of this model. */
    public AsyncBlockDevice drive(BlockDevice device) {
        return new AsyncBlockDevice(device, newExecutor());
    }

    @Override
    public String toString() {
        return virtual() ? "virtual" : "pool:" + poolThreads;
    }
}
