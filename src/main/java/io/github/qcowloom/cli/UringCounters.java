package io.github.qcowloom.cli;

import io.github.qcowloom.storage.Java22Method;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The process's io_uring queue counts at one moment ({@code os.UringQueue}, in the jar's Java 22+ layer), or the
 * difference of two moments: how requests went (through the ring, or directly: alone, or on a loop's thread from
 * the page cache), how many went to the kernel per {@code io_uring_enter}, and where a ring request's time went.
 * {@code bench} prints them beside its figures, because they tell a slow device from a slow hand-off: a run that
 * waits long between a completion and its thread running again is short of carriers, not of I/O.
 *
 * @param ringRequests requests through the ring
 * @param directRequests requests made directly: alone in the queue, or on a loop's thread from the page cache
 * @param submitCalls io_uring_enter calls made to submit (retries included)
 * @param waitCalls io_uring_enter calls of the completion thread
 * @param timedRequests the ring requests the two sums below cover: all of the shared queue's, a random sixteenth of
 *     an event loop's (whose clock reads were 3% of its CPU)
 * @param nanosToCompletion summed over the timed ring requests: from prepared (before the submission lock) to completed
 *     (handed out by whichever thread reaped it): submission, the device, and the wait for a reaping thread
 * @param nanosToResume summed over the timed ring requests: from completed to running again on their own thread
 */
public record UringCounters(long ringRequests, long directRequests, long submitCalls, long waitCalls,
        long timedRequests, long nanosToCompletion, long nanosToResume) {
    private static final Java22Method COUNTERS = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.os.UringQueue", "sharedCounters", MethodType.methodType(long[].class), "io_uring");

    /** The counts so far; all zero where the Java 22+ layer cannot run or no request used io_uring yet. */
    public static UringCounters now() {
        if (COUNTERS.handle() == null) {
            return new UringCounters(0, 0, 0, 0, 0, 0, 0);
        }
        long[] c;
        try {
            c = (long[]) COUNTERS.handle().invokeExact();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
        return new UringCounters(c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
    }

    /** What happened between {@code before} (the earlier moment) and this one. */
    public UringCounters since(UringCounters before) {
        return new UringCounters(ringRequests - before.ringRequests, directRequests - before.directRequests,
                submitCalls - before.submitCalls, waitCalls - before.waitCalls, timedRequests - before.timedRequests,
                nanosToCompletion - before.nanosToCompletion, nanosToResume - before.nanosToResume);
    }

    /** True if no request used io_uring. */
    public boolean none() {
        return ringRequests + directRequests == 0;
    }

    /**
     * One line for people, e.g. "io_uring: 99990 of 100000 requests through the ring, 7.4 per submitting call;
     * prepared to completed 480 us, completed to resumed 250 us (means)"; null if no request used io_uring.
     */
    public String describe() {
        if (none()) {
            return null;
        }
        String line = String.format(Locale.ROOT, "io_uring: %d of %d requests through the ring", ringRequests,
                ringRequests + directRequests);
        if (ringRequests == 0) {
            return line + " (each made directly: alone in the queue, or from the page cache on a loop)";
        }
        return line + String.format(Locale.ROOT,
                ", %.1f per submitting call; prepared to completed %.0f us, completed to resumed %.0f us (means)",
                (double) ringRequests / Math.max(1, submitCalls), meanMicros(nanosToCompletion),
                meanMicros(nanosToResume));
    }

    /** A sum of nanoseconds over the timed ring requests as a mean in microseconds; 0 without any. */
    private double meanMicros(long nanos) {
        return nanos / 1e3 / Math.max(1, timedRequests);
    }

    /**
     * The figures for a run in results.json, numbers under flat keys so that the report takes their medians as
     * it does the others': counts, and the two means in microseconds (0 without timed ring requests).
     */
    Map<String, Object> json() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("io_uring_ring_requests", ringRequests);
        m.put("io_uring_direct_requests", directRequests);
        m.put("io_uring_submit_calls", submitCalls);
        m.put("io_uring_wait_calls", waitCalls);
        m.put("io_uring_prepared_to_completed_us", meanMicros(nanosToCompletion));
        m.put("io_uring_completed_to_resumed_us", meanMicros(nanosToResume));
        return m;
    }
}
