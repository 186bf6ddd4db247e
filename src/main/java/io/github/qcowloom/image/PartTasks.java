package io.github.qcowloom.image;

import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The parts of one guest request that each make their own I/O (data runs in different places of the file, reads
 * of the backing file), run side by side as QEMU's qcow2 runs them: its qcow2_co_preadv_part hands each such part to
 * an AioTaskPool of QCOW2_MAX_WORKERS (8) coroutines. A 1 MiB read of an image whose clusters were allocated out of
 * order is 16 reads in 16 places; one after another, each waits for the disk in turn.
 *
 * <p>Only where reads wait for a device ({@link Storage#waitsForDevice}: O_DIRECT): through the page cache a part
 * is a copy, and helpers cost more than they save (1 MiB reads of such an image at depth 8 on {@code virtual}:
 * 9.4-11.5k a second side by side, 12.5-14.4k one after another; at depth 1 11.0-11.4k against 9.0-9.7k).
 *
 * <p>A request with one such part (most) runs it on its own thread and starts nothing. With more, the request's
 * thread and up to seven virtual threads take the parts in order until none is left, and the request waits for all
 * of them, even after a failure or an interrupt, since they write into its buffer; then the first failure is
 * thrown. The virtual threads inherit their starter's scheduler (an event loop, the interleaving explorer), so the
 * parts' submissions go to the same ring. They run while the request still holds the image's shared lock, so no
 * cluster they read is freed meanwhile (see {@link ReadPath}).
 *
 * <p>No locks: the request's thread alone adds parts; while they run, the workers share only the next part's index
 * and the first failure, each an atomic, and the request reads the failure after joining them.
 */
final class PartTasks {
    /** QEMU's QCOW2_MAX_WORKERS: parts of one request in flight at once. */
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

    /** The first part's failure; later ones are added to it as suppressed. */
    private static final class Failure {
        private final AtomicReference<Throwable> first = new AtomicReference<>();

        boolean seen() {
            return first.get() != null;
        }

        void offer(Throwable e) {
            if (!first.compareAndSet(null, e) && first.get() != e) {
                first.get().addSuppressed(e);
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
