package io.github.qcowloom.os;

/**
 * Waiting for a thread that must end before the caller goes on (one that stopping has woken, one that sets
 * something up): an interrupt must not cut the wait short, only be kept.
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
}
