package io.github.qcowloom.alloc;

import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.util.Arrays;

/**
 * Host clusters whose refcount has just dropped to 0, to be discarded in the host file (QEMU's qcow2_process_discards
 * of its queued discards): adjacent clusters merge into one run as they come. At most {@link #MAX_RUNS} runs are
 * kept, so that memory does not grow with what an image holds; clusters past that stay allocated in the host, which
 * only keeps their space. Not thread-safe: its owner holds the metadata lock or the image exclusively.
 */
public final class FreedRuns {
    static final int MAX_RUNS = 1 << 16;
    private long[] firsts = new long[16];
    private long[] counts = new long[16];
    private int runs;

    /** Lowers {@code cluster}'s refcount by one in {@code refcounts}, and adds it if that freed it. */
    public void dereference(RefcountTable refcounts, HostCluster cluster) throws IOException {
        if (refcounts.update(cluster, -1) == 0) {
            add(cluster);
        }
    }

    /** Adds one cluster that is now free. */
    public void add(HostCluster cluster) {
        long c = cluster.index();
        if (runs > 0 && firsts[runs - 1] + counts[runs - 1] == c) {
            counts[runs - 1]++;
            return;
        }
        if (runs == MAX_RUNS) {
            return;
        }
        if (runs == firsts.length) {
            firsts = Arrays.copyOf(firsts, runs * 2);
            counts = Arrays.copyOf(counts, runs * 2);
        }
        firsts[runs] = c;
        counts[runs] = 1;
        runs++;
    }

    /**
     * Discards every run in {@code file} ({@link Storage#discard}) and forgets them. The clusters' bytes no longer
     * matter, so a failure is ignored, as QEMU ignores it (it only traces it). The caller must hold off allocation
     * until this returns: a cluster handed out before its discard could lose what is written into it.
     */
    public void discardIn(Storage file, int clusterBits) {
        for (int i = 0; i < runs; i++) {
            try {
                file.discard(firsts[i] << clusterBits, counts[i] << clusterBits);
            } catch (IOException e) {
                // The clusters keep their old bytes: nothing refers to them.
            }
        }
        runs = 0;
    }
}
