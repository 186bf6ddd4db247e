package io.github.qcowloom.nbd;

import java.util.List;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * An executor for tests that decide where each task runs ({@link #execute}); the rest of ExecutorService is
 * bookkeeping: shut down is a flag, and nothing is ever left running to wait for.
 */
abstract class TestExecutor extends AbstractExecutorService {
    private volatile boolean shutdown;

    @Override
    public void shutdown() {
        shutdown = true;
    }

    @Override
    public List<Runnable> shutdownNow() {
        shutdown = true;
        return List.of();
    }

    @Override
    public boolean isShutdown() {
        return shutdown;
    }

    @Override
    public boolean isTerminated() {
        return shutdown;
    }

    @Override
    public boolean awaitTermination(long timeout, TimeUnit unit) {
        return true;
    }
}
