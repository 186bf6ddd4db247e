package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostCluster;
import java.util.ArrayList;
import java.util.List;

/**
 * Host clusters whose last reference was removed in the cache but not yet on disk. Their refcounts drop only
 * after a flush has made the removal durable: were the decrease to reach the disk first, a crash would leave a
 * reference to a free cluster, and a reused freed cluster would expose its new data through the old entry.
 * Guarded by the image's metadata lock.
 *
 * <p>Clusters a guest's discard freed are discarded in the host file too once their refcount reaches 0, as QEMU's
 * {@code pass-discard-request} does (on with {@code discard=unmap}, and in qemu-img and qemu-io): a guest's trim
 * gives the host its space back.
 */
final class DeferredFrees {
    /**
     * A run of host clusters to dereference once; {@code release}: discard those that reach refcount 0 in the host
     * file.
     */
    record Run(HostCluster first, long count, boolean release) {
    }

    private List<Run> pending = new ArrayList<>();

    void add(HostCluster first, long count, boolean release) {
        pending.add(new Run(first, count, release));
    }

    /** Puts back a run taken by {@link #takeAll} whose flush failed. */
    void add(Run run) {
        pending.add(run);
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
