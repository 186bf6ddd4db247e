package io.github.qcowloom.cli;

import java.io.InterruptedIOException;
import java.util.concurrent.TimeUnit;

/**
 * qemu-img's {@code -r RATE} (commit, convert): bytes a second, the copy held back until it is within them. Not final:
 * a test records what it is asked to wait for.
 */
class RateLimit {
    private final long bytesPerSecond;
    private final long started = System.nanoTime();

    /** {@code bytesPerSecond} 0: no limit. */
    RateLimit(long bytesPerSecond) {
        this.bytesPerSecond = bytesPerSecond;
    }

    /** Sleeps until {@code bytes} since this limit was made are within the rate; may be called from many threads. */
    void await(long bytes) throws InterruptedIOException {
        if (bytesPerSecond <= 0) {
            return;
        }
        long wait = started + (long) (bytes * 1e9 / bytesPerSecond) - System.nanoTime();
        if (wait > 0) {
            try {
                TimeUnit.NANOSECONDS.sleep(wait);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while held to the rate limit");
            }
        }
    }
}
