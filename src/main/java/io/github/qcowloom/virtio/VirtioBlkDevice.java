package io.github.qcowloom.virtio;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.exec.ExecutionModel;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A virtio-blk device (virtio 1.2, 5.2) over a {@link BlockDevice}: what a hypervisor embeds, giving it guest
 * memory, the queues the driver set up, kicks, and a {@link Notifier} for interrupts. Each request runs on the
 * execution model's threads (a virtual thread per request by default) and completes into its queue's used ring.
 * The transport (PCI, MMIO, vhost-user) stays with the embedder: it offers {@link #features()}, shows
 * {@link #configSpace()}, and maps its queue notifications to {@link #kick}.
 *
 * <p>A driver that breaks the ring rules (descriptor loops, heads out of range, rings outside memory) breaks the
 * device: queues stop taking requests and the notifier hears {@link Notifier#needsReset} once, until
 * {@link #reset}. A bad request (buffers outside memory or in the wrong direction, range outside the disk) only
 * fails with VIRTIO_BLK_S_IOERR.
 *
 * <p>The write cache is the driver's to choose, as in QEMU: a driver that accepts VIRTIO_BLK_F_FLUSH sends flushes
 * and gets a writeback cache; one that does not (firmware, boot loaders) can never flush, and may take a write's
 * completion for its durability (virtio 1.2, 5.2.5.1, without CONFIG_WCE), so each of its writes and write-zeroes
 * is made durable before it completes.
 *
 * <p>Lock discipline: {@code queuesLock} guards {@code queues} and {@code acknowledged} (start, stop, reset,
 * negotiation); kicks read the queue array without it (a volatile array reference, entries set under the lock
 * and read as a volatile snapshot), and requests read {@code writeThrough}, volatile, set with
 * {@code acknowledged}. Each {@link BlkQueue} has its own locks, taken after queuesLock.
 */
public final class VirtioBlkDevice implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlkDevice.class);

    /** How the device reaches the driver. Called from request threads; must not block for long. */
    public interface Notifier {
        /** Queue {@code queue}'s used ring has entries the driver asked to hear about: interrupt the guest. */
        void interrupt(int queue);

        /**
         * The driver broke the rules of queue {@code queue}; the device stopped and needs a reset (set
         * DEVICE_NEEDS_RESET and send a configuration interrupt). Called once until {@link #reset}.
         */
        default void needsReset(int queue, String reason) {
        }

        /**
         * A request of queue {@code queue} ended in an unchecked exception: a defect of the device or the disk, not
         * the driver's doing (logged; the request failed with an I/O error, or, where that could not be answered,
         * the device breaks as for {@link #needsReset}). For tests and fuzzing.
         */
        default void defect(int queue, RuntimeException e) {
        }
    }

    private final BlockDevice disk;
    private final VirtioBlkConfig config;
    private final ExecutorService executor;
    private final Notifier notifier;
    private final ReentrantLock queuesLock = new ReentrantLock();
    private volatile BlkQueue[] queues;
    private long acknowledged;
    private volatile boolean writeThrough = true; // until a driver accepts F_FLUSH
    private final AtomicReference<String> broken = new AtomicReference<>();

    /** A device over {@code disk} whose requests run on a new executor of {@code model}. */
    public VirtioBlkDevice(BlockDevice disk, VirtioBlkConfig config, ExecutionModel model, Notifier notifier) {
        if (!config.readOnly() && disk.readOnly()) {
            throw new IllegalArgumentException("the disk is read-only: configure the device read-only");
        }
        this.disk = disk;
        this.config = config;
        this.executor = model.newExecutor();
        this.notifier = notifier;
        this.queues = new BlkQueue[config.numQueues()];
    }

    public VirtioBlkConfig config() {
        return config;
    }

    /** The features the device offers (virtio-blk and ring features, VIRTIO_F_VERSION_1). */
    public long features() {
        return config.features();
    }

    /** Records the features the driver accepted; they must be a subset of {@link #features()}. */
    public void acknowledge(long driverFeatures) {
        if ((driverFeatures & ~features()) != 0) {
            throw new IllegalArgumentException("the driver accepted features the device did not offer: 0x"
                    + Long.toHexString(driverFeatures & ~features()));
        }
        queuesLock.lock();
        try {
            acknowledged = driverFeatures;
            writeThrough = config.writeThrough() || (driverFeatures & VirtioBlk.bit(VirtioBlk.F_FLUSH)) == 0;
        } finally {
            queuesLock.unlock();
        }
    }

    public long acknowledged() {
        queuesLock.lock();
        try {
            return acknowledged;
        } finally {
            queuesLock.unlock();
        }
    }

    /**
     * True while the driver has not accepted F_FLUSH, or always where the configuration says: each write is made
     * durable before it completes.
     */
    public boolean writeThrough() {
        return writeThrough;
    }

    /** The device configuration space (5.2.4) for the disk's current size. */
    public byte[] configSpace() {
        return config.configSpace(disk.size());
    }

    /**
     * Starts queue {@code queue} over {@code memory} at {@code layout}. Throws {@link GuestMemoryException} if the
     * rings are not in guest memory, IllegalArgumentException for a size above the maximum or an index out of
     * range, IllegalStateException if it is already started.
     */
    public void startQueue(int queue, GuestMemory memory, VirtqueueLayout layout) {
        checkIndex(queue);
        if (layout.size() > config.maxQueueSize()) {
            throw new IllegalArgumentException("queue size " + layout.size() + " above the maximum "
                    + config.maxQueueSize());
        }
        queuesLock.lock();
        try {
            if (queues[queue] != null) {
                throw new IllegalStateException("queue " + queue + " is already started");
            }
            boolean eventIndex = (acknowledged & VirtioBlk.bit(VirtioBlk.F_RING_EVENT_IDX)) != 0;
            boolean indirect = (acknowledged & VirtioBlk.bit(VirtioBlk.F_RING_INDIRECT_DESC)) != 0;
            SplitVirtqueue ring = new SplitVirtqueue(memory, layout, eventIndex, indirect,
                    config.maxChain(layout.size()));
            BlkQueue[] next = queues.clone();
            next[queue] = new BlkQueue(queue, ring, memory, disk, config, executor, this);
            queues = next;
        } finally {
            queuesLock.unlock();
        }
    }

    /** True if queue {@code queue} is started. */
    public boolean started(int queue) {
        checkIndex(queue);
        return queues[queue] != null;
    }

    /**
     * The driver notified queue {@code queue}: takes its new requests and returns without waiting for them. A kick
     * of a queue that is not started is ignored.
     */
    public void kick(int queue) {
        checkIndex(queue);
        BlkQueue q = queues[queue];
        if (q != null) {
            q.kick();
        }
    }

    /**
     * Stops queue {@code queue}: takes no more requests, waits for those in flight (their completions reach the
     * used ring), and returns the next available index (what a resumed queue starts from), or -1 if the queue
     * was not started.
     */
    public int stopQueue(int queue) {
        checkIndex(queue);
        queuesLock.lock();
        try {
            BlkQueue q = queues[queue];
            if (q == null) {
                return -1;
            }
            int next = q.stop();
            BlkQueue[] rest = queues.clone();
            rest[queue] = null;
            queues = rest;
            return next;
        } finally {
            queuesLock.unlock();
        }
    }

    /** Requests of queue {@code queue} running now (0 if it is not started). */
    public int inFlight(int queue) {
        checkIndex(queue);
        BlkQueue q = queues[queue];
        return q == null ? 0 : q.inFlight();
    }

    /** Stops every queue (waiting for their requests), forgets the features, and clears a broken state. */
    public void reset() {
        queuesLock.lock();
        try {
            for (int i = 0; i < queues.length; i++) {
                stopQueue(i);
            }
            acknowledged = 0;
            writeThrough = true;
            broken.set(null);
        } finally {
            queuesLock.unlock();
        }
    }

    /** True once the driver broke the ring rules, until {@link #reset}. */
    public boolean broken() {
        return broken.get() != null;
    }

    /** Why the device broke, or null. */
    public String brokenReason() {
        return broken.get();
    }

    void fail(int queue, String reason) {
        if (broken.compareAndSet(null, "queue " + queue + ": " + reason)) {
            LOG.warn("virtio-blk device needs a reset: queue {}: {}", queue, reason);
            notifier.needsReset(queue, reason);
        }
    }

    void defect(int queue, RuntimeException e) {
        notifier.defect(queue, e);
    }

    void interrupt(int queue) {
        notifier.interrupt(queue);
    }

    private void checkIndex(int queue) {
        if (queue < 0 || queue >= config.numQueues()) {
            throw new IllegalArgumentException("queue " + queue + " of " + config.numQueues());
        }
    }

    /** Stops every queue, waiting for requests in flight; the disk stays open (its owner closes it). */
    @Override
    public void close() {
        reset();
        executor.shutdown();
        try {
            if (!executor.awaitTermination(1, TimeUnit.MINUTES)) {
                LOG.warn("virtio-blk requests still running after a minute");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
