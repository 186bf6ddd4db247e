package io.github.qcowloom.virtio;

/** Waiting for a thread that stopping has woken: an interrupt must not cut the wait short, only be kept. */
final class Joins {
    private Joins() {
    }

    /** Waits until {@code thread} ends; an interrupt meanwhile is restored on the caller afterwards. */
    static void uninterruptibly(Thread thread) {
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
