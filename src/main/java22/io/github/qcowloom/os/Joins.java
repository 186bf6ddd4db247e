package io.github.qcowloom.os;

import java.time.Duration;

/**
 * Waiting for a thread that must end before the caller goes on (one that stopping has woken, one that sets
 * something up): an interrupt must not cut the wait short, only be kept; or, at exit, for a little while at most.
 */
public final class Joins {
    private Joins() {
    }

    /** Waits until {@code thread} ends; an interrupt meanwhile is restored on the caller afterwards. */
    public static void uninterruptibly(Thread thread) {
        boolean interrupted = false;
        while (true) {
            try {
                thread.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** Waits up to 100 ms for {@code thread} to end (an interrupt ends the wait and is kept): for an exit. */
    static void briefly(Thread thread) {
        try {
            thread.join(Duration.ofMillis(100));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
