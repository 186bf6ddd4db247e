package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostCluster;
import java.util.ArrayList;
import java.util.List;

/**
 * Host clusters whose last reference was removed in the cache but not yet on disk. Their refcounts drop only
 * after a flush has made the removal durable: were the decrease to reach the disk first, a crash would leave a
 * reference to a free cluster, and a reused freed cluster would expose its new data through the old entry.
 * Guarded by the image's metadata lock.
 */
final class DeferredFrees {
    /** A run of host clusters to dereference once. */
    record Run(HostCluster first, long count) {
    }

    private List<Run> pending = new ArrayList<>();

    void add(HostCluster first, long count) {
        pending.add(new Run(first, count));
    }

    /** Takes every pending run; the caller applies them after the flush that covers their removal. */
    List<Run> takeAll() {
        List<Run> taken = pending;
        pending = new ArrayList<>();
        return taken;
    }

    boolean isEmpty() {
        return pending.isEmpty();
    }
}
