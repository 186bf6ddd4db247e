package io.github.qcowloom.virtio;

import io.github.qcowloom.api.BlockDevice;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One started virtqueue of the device: a kick takes every available chain and hands each to the execution model
 * as one request (a virtual thread per request by default); each request, when done, returns its chain through
 * the used ring and interrupts the driver if it asked. At most a queue size of requests run at once, whatever
 * the driver puts in the ring (a driver that reuses heads cannot make us hold more): beyond that the queue stops
 * taking, and the request that brings the count back under resumes taking.
 *
 * <p>Lock discipline: {@code takeLock} guards the taking side of the ring (its next available index) and
 * {@code stopped}; {@code usedLock} guards the returning side (used index, last interrupt) and is what
 * {@code drained} waits on. Order: takeLock, then usedLock (a request refused while being taken is returned
 * under both); a finishing request takes only usedLock. {@code inFlight} and {@code backlogged} are atomics read
 * outside the locks: a taker that stops for the limit sets backlogged and then re-reads inFlight; a finisher
 * decrements inFlight and then reads backlogged; one of them sees the other, so the queue never stalls.
 */
final class BlkQueue {
    private static final Logger LOG = LoggerFactory.getLogger(BlkQueue.class);

    private final int index;
    private final SplitVirtqueue ring;
    private final GuestMemory memory;
    private final BlockDevice disk;
    private final VirtioBlkConfig config;
    private final ExecutorService executor;
    private final VirtioBlkDevice device;

    private final ReentrantLock takeLock = new ReentrantLock();
    private final ReentrantLock usedLock = new ReentrantLock();
    private final Condition drained = usedLock.newCondition();
    private final AtomicInteger inFlight = new AtomicInteger();
    /** Where a request's unchecked exception is reported: made once, not per request. */
    private final Consumer<RuntimeException> defects;
    private volatile boolean backlogged;
    private boolean stopped;

    BlkQueue(int index, SplitVirtqueue ring, GuestMemory memory, BlockDevice disk, VirtioBlkConfig config,
            ExecutorService executor, VirtioBlkDevice device) {
        this.index = index;
        this.ring = ring;
        this.memory = memory;
        this.disk = disk;
        this.config = config;
        this.executor = executor;
        this.device = device;
        this.defects = e -> device.defect(index, e);
    }

    /** Takes every available chain and starts its request; returns at once (requests run on their threads). */
    void kick() {
        takeLock.lock();
        try {
            while (!stopped && !device.broken()) {
                if (inFlight.get() >= ring.size()) {
                    backlogged = true;
                    if (inFlight.get() >= ring.size()) {
                        return;
                    }
                    backlogged = false;
                }
                DescriptorChain chain = ring.take();
                if (chain == null) {
                    if (ring.enableKicks()) {
                        continue;
                    }
                    return;
                }
                start(chain);
            }
        } catch (VirtqueueException | GuestMemoryException e) {
            device.fail(index, e.getMessage());
        } catch (InternalError e) {
            // A fault reading the rings (a front end's file shrunk under its mapping): the queue needs a reset.
            device.fail(index, "guest memory fault: " + e.getMessage());
        } finally {
            takeLock.unlock();
        }
    }

    private void start(DescriptorChain chain) {
        inFlight.incrementAndGet();
        try {
            executor.execute(() -> run(chain));
        } catch (RejectedExecutionException e) {
            // The device is closing: give the chain back unanswered rather than leave it counted forever.
            finish(chain.head(), 0);
        }
    }

    private void run(DescriptorChain chain) {
        int written = 0;
        try {
            written = new BlkRequest(chain, memory, disk, config, device.writeThrough(), defects).run();
        } catch (VirtqueueException | GuestMemoryException e) {
            device.fail(index, e.getMessage());
        } catch (RuntimeException e) {
            // A defect, or memory unmapped under the request: the queue is not to be trusted.
            LOG.warn("queue {}: request at head {} failed (a defect)", index, chain.head(), e);
            try {
                defects.accept(e);
            } finally {
                device.fail(index, e.toString());
            }
        } catch (InternalError e) {
            // A fault in guest memory (a front end's file shrunk under its mapping): no status could be trusted.
            device.fail(index, "guest memory fault: " + e.getMessage());
        } finally {
            // Whatever ended it, the request is counted out, or stop() would wait for it forever.
            finish(chain.head(), written);
        }
    }

    private void finish(int head, int written) {
        boolean interrupt = false;
        usedLock.lock();
        try {
            // A broken device uses nothing more until the driver resets it: its rings are not to be trusted.
            if (!device.broken()) {
                ring.put(head, written);
                interrupt = ring.shouldInterrupt();
            }
        } catch (GuestMemoryException | IllegalStateException e) {
            // The used ring was checked at start; this is guest memory going away under a running queue.
            device.fail(index, "used ring: " + e.getMessage());
        } finally {
            if (inFlight.decrementAndGet() == 0) {
                drained.signalAll();
            }
            usedLock.unlock();
        }
        if (interrupt) {
            device.interrupt(index);
        }
        if (backlogged) {
            backlogged = false;
            kick();
        }
    }

    /** Stops taking chains, waits for the requests in flight, and returns the next available index. */
    int stop() {
        takeLock.lock();
        try {
            stopped = true;
        } finally {
            takeLock.unlock();
        }
        usedLock.lock();
        try {
            while (inFlight.get() > 0) {
                drained.awaitUninterruptibly();
            }
        } finally {
            usedLock.unlock();
        }
        takeLock.lock();
        try {
            return ring.nextAvailable();
        } finally {
            takeLock.unlock();
        }
    }

    int inFlight() {
        return inFlight.get();
    }
}
