package io.github.qcowloom.virtio;

import io.github.qcowloom.os.EventFds;
import io.github.qcowloom.os.Joins;
import java.io.IOException;
import java.util.function.IntConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The thread that waits on one queue's kick eventfd and hands each kick to the device. It is a platform thread:
 * the wait is a blocking poll(2) downcall, which would pin a virtual thread's carrier for as long as the guest
 * stays idle (with 2 carriers and 4 queues, the requests' virtual threads would starve). The requests themselves
 * still run on the execution model's threads. {@link #stop} wakes it through a private stop eventfd.
 */
final class KickWaiter {
    private static final Logger LOG = LoggerFactory.getLogger(KickWaiter.class);

    private final int queue;
    private final int kickFd;
    private final int stopFd;
    private final Thread thread;

    /** Starts waiting on {@code kickFd} (owned by the caller, who closes it after {@link #stop}). */
    KickWaiter(int queue, int kickFd, IntConsumer onKick) throws IOException {
        this.queue = queue;
        this.kickFd = kickFd;
        this.stopFd = EventFds.create();
        this.thread = Thread.ofPlatform().daemon().name("vhost-user-kick-" + queue).start(() -> run(onKick));
    }

    private void run(IntConsumer onKick) {
        try {
            while (EventFds.await(kickFd, stopFd)) {
                onKick.accept(queue);
            }
        } catch (IOException | RuntimeException | InternalError e) {
            // InternalError: a fault in guest memory outside the queue's own reads (which fail the queue), as in
            // VhostUserBlkServer. The queue takes no more kicks; the log says so, with no stack trace.
            LOG.warn("queue {}: stopped waiting for kicks: {}", queue, e.getMessage());
        }
    }

    /** Wakes the thread, waits for it to end, and frees the stop eventfd. */
    void stop() {
        try {
            EventFds.signal(stopFd);
        } catch (IOException e) {
            throw new IllegalStateException("cannot wake the kick waiter of queue " + queue, e);
        }
        Joins.uninterruptibly(thread);
        EventFds.close(stopFd);
    }
}
