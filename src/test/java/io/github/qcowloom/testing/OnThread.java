package io.github.qcowloom.testing;

import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadFactory;

/** Runs a piece of a test on a thread of a given factory (an event loop's, say) and hands back what it returns. */
public final class OnThread {
    private OnThread() {
    }

    /** Starts {@code task} on a new thread of {@code threads}; the future holds its result or what it threw. */
    public static <T> CompletableFuture<T> start(ThreadFactory threads, Callable<T> task) {
        CompletableFuture<T> result = new CompletableFuture<>();
        threads.newThread(() -> {
            try {
                result.complete(task.call());
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        }).start();
        return result;
    }
}
