package io.github.qcowloom.alloc;

import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.Ticker;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The seed design's volatile free list: preallocated clusters that writes take without waiting on refcount
 * updates. An allocator virtual thread keeps the pool between a low and a high threshold (refill to the midpoint
 * below low, trim to it above high); a write that finds the pool empty doubles high, up to a cap, and it decays
 * by 25 % a second back towards its base; low follows high at their base ratio ({@link #lowFor}), so that the gap
 * between them, at least half of which each refill brings, grows with high instead of closing at the cap. After
 * {@link #IDLE_NANOS} without a take the pool is emptied and the source told it is idle, so that the image can be
 * marked clean.
 *
 * <p>Takes no lock of its own: the queue and counters are concurrent, and the allocator sleeps by parking (a take
 * that wants a refill sets a flag, then unparks it), so that the time it sleeps by can be the explorer's virtual
 * clock ({@link Ticker}). The source's methods take the image's metadata lock.
 */
public final class ClusterPool implements AutoCloseable {
    static final long IDLE_NANOS = TimeUnit.SECONDS.toNanos(2);
    /** Clusters allocated per hold of the metadata lock while refilling. */
    static final int REFILL_BATCH = 32;
    private static final Logger LOG = LoggerFactory.getLogger(ClusterPool.class);

    private final ClusterSource source;
    private final int baseLow;
    private final int baseHigh;
    private final int max;
    private final ConcurrentLinkedQueue<NewCluster> clusters = new ConcurrentLinkedQueue<>();
    private final AtomicInteger size = new AtomicInteger();
    private final Ticker ticker;
    private final Thread allocator;
    /** {@link #lowFor} of {@link #high}, kept rather than derived: every take compares the pool with it. */
    private volatile int low;
    private volatile int high;
    private volatile long lastTake;
    private volatile boolean closed;
    /**
     * Set by the first take that finds the pool below low, cleared by the allocator when it wakes: one wake-up
     * per refill instead of one per take (a JFR profile of allocating writes showed the takes' signals, each an
     * unpark of the allocator, among the hottest frames).
     */
    private final java.util.concurrent.atomic.AtomicBoolean refillRequested =
            new java.util.concurrent.atomic.AtomicBoolean();
    private volatile boolean idle = true;
    /**
     * Set when the allocator failed, with an I/O error or an Error (an OutOfMemoryError can land in any thread):
     * takes then fall back to direct allocation, which reports the error to the writer, and the thresholds stop
     * growing since no refill will come. Corrupt metadata ({@link MetadataCorruptionException}) is not retried:
     * the source is told (the image marks itself corrupt) and every later take fails with it.
     */
    private volatile Throwable failure;

    public ClusterPool(ClusterSource source, int low, int high, int max) {
        this(source, low, high, max, Ticker.SYSTEM);
    }

    /** A pool whose allocator sleeps, decays and goes idle by {@code ticker}'s time. */
    public ClusterPool(ClusterSource source, int low, int high, int max, Ticker ticker) {
        if (low < 1 || high < low || max < high) {
            throw new IllegalArgumentException("pool thresholds need 1 <= low <= high <= max: " + low + ", " + high
                    + ", " + max);
        }
        this.source = source;
        this.ticker = ticker;
        this.lastTake = ticker.nanoTime();
        this.baseLow = low;
        this.baseHigh = high;
        this.max = max;
        this.low = low;
        this.high = high;
        this.allocator = Thread.ofVirtual().name("qcow2-cluster-pool").start(this::run);
    }

    /**
     * A preallocated cluster, or none when the pool is empty (the caller allocates directly).
     *
     * @throws MetadataCorruptionException once the allocator found corrupt metadata: the request that wants a
     *     cluster fails with it, rather than searching the same broken refcounts again
     */
    public Optional<NewCluster> take() throws MetadataCorruptionException {
        if (failure instanceof MetadataCorruptionException m) {
            throw new MetadataCorruptionException(m.getMessage(), m);
        }
        lastTake = ticker.nanoTime();
        NewCluster c = clusters.poll();
        if (c != null) {
            if (size.decrementAndGet() < low && refillRequested.compareAndSet(false, true)) {
                signal();
            }
            return Optional.of(c);
        }
        // Demand outran the pool: double high (up to the cap), low keeping its base ratio to it, and refill.
        if (failure == null) {
            int raised = (int) Math.min(max, 2L * high);
            high = raised;
            low = lowFor(raised);
            refillRequested.set(true);
            signal();
        }
        return Optional.empty();
    }

    public int size() {
        return size.get();
    }

    public int low() {
        return low;
    }

    public int high() {
        return high;
    }

    /**
     * The low threshold that goes with {@code high}: the base ratio kept. Doubled on its own, low reached high at
     * the cap, and every take then set off a refill of one cluster (a refcount update and a fallocate per write;
     * figures in the README's Execution models).
     */
    private int lowFor(int high) {
        return (int) Math.max(baseLow, (long) high * baseLow / baseHigh);
    }

    private void signal() {
        LockSupport.unpark(allocator);
    }

    private void run() {
        long lastDecay = ticker.nanoTime();
        while (!closed) {
            // A request made while the last refill ran is not lost: its flag is seen here, and an unpark that came
            // before this park makes it return at once.
            if (!refillRequested.get()) {
                ticker.parkNanos(TimeUnit.MILLISECONDS.toNanos(250));
            }
            if (closed) {
                return;
            }
            if (Thread.currentThread().isInterrupted()) {
                // As for an error: takes then allocate directly instead of signalling a thread that is gone.
                failure = new java.io.InterruptedIOException("the cluster pool's allocator was interrupted");
                return;
            }
            refillRequested.set(false);
            long now = ticker.nanoTime();
            if (now - lastDecay >= TimeUnit.SECONDS.toNanos(1)) {
                lastDecay = now;
                int lowered = (int) Math.max(baseHigh, high * 3L / 4);
                high = lowered;
                low = lowFor(lowered);
            }
            try {
                if (now - lastTake >= IDLE_NANOS) {
                    if (!idle) {
                        drain();
                        source.idle();
                        idle = true;
                    }
                    continue;
                }
                idle = false;
                adjust();
            } catch (MetadataCorruptionException e) {
                // The image's fault, not the host's: recorded for the takes, which fail with it, and reported to
                // the image, which marks itself corrupt. One line, no stack trace: the message says what is wrong.
                failure = e;
                LOG.warn("cluster pool allocator stopped: {}", e.getMessage());
                try {
                    source.corrupted(e);
                } catch (IOException | RuntimeException marking) {
                    LOG.warn("could not mark the image corrupt: {}", marking.toString());
                }
                return;
            } catch (IOException e) {
                LOG.warn("cluster pool allocator stopped: {}", e.toString());
                failure = e;
                return;
            } catch (Throwable t) {
                // Not silently: an allocator that died unrecorded would leave takes signalling a dead thread and
                // doubling thresholds forever. Recorded first (logging may itself fail when memory is short).
                failure = t;
                LOG.error("cluster pool allocator stopped; writes allocate directly from now on", t);
                return;
            }
        }
    }

    /** Why the allocator stopped (an IOException or an Error), or null while it runs. */
    public Throwable failure() {
        return failure;
    }

    /**
     * Refills to the midpoint below low, in batches, so that the metadata lock each batch takes is never held
     * long against the writers linking their clusters; trims to the midpoint above high.
     */
    private void adjust() throws IOException {
        int n = size.get();
        if (n < low) {
            // The midpoint is read again for each batch: takes that find the pool empty while it refills double
            // the thresholds, and the refill then goes on to the new midpoint rather than stop at the old one.
            int mid;
            while (!closed && (n = size.get()) < (mid = midpoint())) {
                for (NewCluster c : source.allocate(Math.min(REFILL_BATCH, mid - n))) {
                    clusters.add(c);
                    size.incrementAndGet();
                }
            }
        } else if (n > high) {
            release(n - midpoint());
        }
    }

    /** Halfway between the thresholds, where a refill or a release leaves the pool. */
    private int midpoint() {
        int l = low;
        return l + (high - l) / 2;
    }

    private void release(int count) throws IOException {
        List<NewCluster> taken = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            NewCluster c = clusters.poll();
            if (c == null) {
                break;
            }
            size.decrementAndGet();
            taken.add(c);
        }
        if (!taken.isEmpty()) {
            source.release(taken);
        }
    }

    /** Gives every pooled cluster back to the source. */
    public void drain() throws IOException {
        release(Integer.MAX_VALUE);
    }

    /** Stops the allocator and gives every pooled cluster back. */
    @Override
    public void close() throws IOException {
        closed = true;
        signal();
        try {
            allocator.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        drain();
    }
}
