package io.github.qcowloom.alloc;

import io.github.qcowloom.api.MetadataCorruptionException;
import java.io.IOException;
import java.util.List;

/** Where the cluster pool gets clusters from and gives them back: the image's refcounts, under its metadata lock. */
public interface ClusterSource {
    /**
     * Allocates {@code n} clusters (refcount 1, no reference). The image is marked dirty before any of them can
     * reach the disk, since a crash would leak them.
     */
    List<NewCluster> allocate(int n) throws IOException;

    /** Gives back clusters that were never referenced (refcount 1 to 0). */
    void release(List<NewCluster> clusters) throws IOException;

    /** The pool has been empty and idle: the image may flush and clear its dirty bit. */
    void idle() throws IOException;

    /**
     * An allocation or release on the pool's thread met corrupt metadata: the image marks itself corrupt, as
     * QEMU's qcow2_signal_corruption does where the allocation happens. Nothing by default.
     */
    default void corrupted(MetadataCorruptionException e) throws IOException {
    }
}
