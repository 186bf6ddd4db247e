package io.github.qcowloom.image;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;

/**
 * In-flight allocations by guest cluster: a writer that must allocate or copy a cluster holds its lock, so a
 * second writer to the same cluster waits for it, while writers to other clusters never wait on each other.
 * Entries exist only while someone holds or waits for them.
 */
final class ClusterLocks {
    /** One guest cluster's lock and the number of threads holding or waiting for it. */
    static final class Held {
        private final ReentrantLock lock = new ReentrantLock();
        private int users;
    }

    private final ConcurrentHashMap<Long, Held> held = new ConcurrentHashMap<>();

    Held lock(long cluster) {
        // compute() runs its function atomically per key and never blocks inside it.
        Held h = held.compute(cluster, (k, v) -> {
            Held e = v == null ? new Held() : v;
            e.users++;
            return e;
        });
        h.lock.lock();
        return h;
    }

    void unlock(long cluster, Held h) {
        h.lock.unlock();
        held.compute(cluster, (k, v) -> --v.users == 0 ? null : v);
    }

    /** Clusters with a holder or waiter now (for tests). */
    int size() {
        return held.size();
    }
}
