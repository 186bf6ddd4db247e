package io.github.qcowloom.image;

import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The parts of one guest request that each make their own I/O, run side by side as QEMU's qcow2 runs them: its
 * qcow2_co_preadv_part and qcow2_co_pwritev_part hand such parts to an AioTaskPool of coroutines. Reads: data runs
 * in different places of the file, reads of the backing file. Writes: writes in place, one per run of clusters in
 * a row in the file (what allocates stays in guest order on the request's thread: see WritePath). A 1 MiB read of
 * an image whose clusters were allocated out of order is 16 reads in 16 places; one after another, each waits for
 * the disk in turn.
 *
 * <p>Only where reads wait for a device ({@link Storage#waitsForDevice}: O_DIRECT): through the page cache a part
 * is a copy, and helpers cost more than they save (1 MiB reads of such an image at depth 8 on {@code virtual}:
 * 9.4-11.5k a second side by side, 12.5-14.4k one after another; at depth 1 11.0-11.4k against 9.0-9.7k).
 *
 * <p>A request with one such part (most) runs it on its own thread and starts nothing. With more, the request's
 * thread and up to fifteen virtual threads take the parts in order until none is left, and the request waits for
 * all of them, even after a failure or an interrupt, since they use its buffer; then the first failure is thrown
 * (or a corruption one of them found, so that the image is marked corrupt). The virtual threads inherit their
 * starter's scheduler (an event loop, the interleaving explorer), so the parts' submissions go to the same ring.
 * They run while the request still holds the image's shared lock, so no cluster they touch is freed meanwhile
 * (deferred frees wait for the exclusive side). The parts must need no lock the request's thread holds: the callers
 * make them on this thread under an exclusive edit (see WritePath).
 *
 * <p>No locks of its own: the request's thread alone adds parts; while they run, the workers share only the next
 * part's index and the failure, each an atomic, and the request reads the failure after joining them.
 */
final class PartTasks {
    /**
     * Parts of one request in flight at once. QEMU's QCOW2_MAX_WORKERS is 8; 16 let a 1 MiB read of 64 KiB
     * clusters go in one round (1 MiB O_DIRECT reads of a fragmented image at depth 1, 4 alternating pairs against
     * qemu-img: 1.07x with 16, 0.96x with 8; at depth 8 both 0.73-0.85x, where the host's bandwidth bounds them).
     */
    static final int MAX_WORKERS = 16;

    /** One part's I/O; it fills its own slice of the request's buffer. */
    @FunctionalInterface
    interface Part {
        void run() throws IOException;
    }

    /** False: the parts run one after another on the request's thread (see {@link Storage#waitsForDevice}). */
    private final boolean sideBySide;
    private Part first;
    private List<Part> more;

    PartTasks(boolean sideBySide) {
        this.sideBySide = sideBySide;
    }

    /** Adds a part; nothing runs before {@link #runAll}. */
    void add(Part part) {
        if (first == null) {
            first = part;
        } else {
            if (more == null) {
                more = new ArrayList<>();
                more.add(first);
            }
            more.add(part);
        }
    }

    /** Runs every part added (side by side when there are several) and returns once all have ended. */
    void runAll() throws IOException {
        if (more == null) {
            if (first != null) {
                first.run();
            }
            return;
        }
        List<Part> parts = more;
        if (!sideBySide) {
            for (Part part : parts) {
                part.run();
            }
            return;
        }
        AtomicInteger next = new AtomicInteger();
        Failure failure = new Failure();
        Runnable worker = () -> {
            for (int i; !failure.seen() && (i = next.getAndIncrement()) < parts.size(); ) {
                try {
                    parts.get(i).run();
                } catch (IOException | RuntimeException | Error e) {
                    failure.offer(e);
                }
            }
        };
        Thread[] helpers = new Thread[Math.min(MAX_WORKERS, parts.size()) - 1];
        int started = 0;
        try {
            for (; started < helpers.length; started++) {
                helpers[started] = Thread.ofVirtual().name("qcow2-part").start(worker);
            }
        } catch (RuntimeException | OutOfMemoryError e) {
            // No more threads could start: the request's own thread and those started take every part left.
        }
        worker.run();
        joinUninterruptibly(helpers, started);
        failure.rethrow();
    }

    private static void joinUninterruptibly(Thread[] threads, int count) {
        boolean interrupted = false;
        for (int i = 0; i < count; i++) {
            while (true) {
                try {
                    threads[i].join();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * The failure the request throws: the first part's, unless a later part found the image corrupt, which wins
     * (the request's caller marks the image corrupt on it). Later failures are dropped, not added as suppressed: an
     * exception may be one instance that a table cache hands to every request waiting for the same load.
     */
    private static final class Failure {
        private final AtomicReference<Throwable> first = new AtomicReference<>();

        boolean seen() {
            return first.get() != null;
        }

        void offer(Throwable e) {
            while (true) {
                Throwable was = first.get();
                boolean replaces = was == null
                        || e instanceof MetadataCorruptionException && !(was instanceof MetadataCorruptionException);
                if (!replaces || first.compareAndSet(was, e)) {
                    return;
                }
            }
        }

        void rethrow() throws IOException {
            Throwable e = first.get();
            if (e instanceof IOException io) {
                throw io;
            } else if (e instanceof RuntimeException r) {
                throw r;
            } else if (e instanceof Error err) {
                throw err;
            }
        }
    }
}
