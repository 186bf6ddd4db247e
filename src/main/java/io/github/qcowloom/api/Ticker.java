package io.github.qcowloom.api;

import java.util.concurrent.locks.LockSupport;

/**
 * The time the driver's own background work runs by (the cluster pool's refill, decay and idle flush). The system
 * ticker is real time; the interleaving explorer passes a virtual clock, so that a seed replays the same schedule
 * however fast the machine is.
 */
public interface Ticker {
    /** Real time: {@link System#nanoTime()} and {@link LockSupport#parkNanos(long)}. */
    Ticker SYSTEM = new Ticker() {
        @Override
        public long nanoTime() {
            return System.nanoTime();
        }

        @Override
        public void parkNanos(long nanos) {
            LockSupport.parkNanos(nanos);
        }
    };

    /** A monotonic time in nanoseconds, as {@link System#nanoTime()}. */
    long nanoTime();

    /**
     * Parks the current thread for up to {@code nanos} of this ticker's time, or until {@link LockSupport#unpark}
     * (or spuriously, as {@link LockSupport#parkNanos(long)} may): callers re-check their condition.
     */
    void parkNanos(long nanos);
}
