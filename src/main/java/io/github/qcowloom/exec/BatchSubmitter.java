package io.github.qcowloom.exec;

import io.github.qcowloom.api.AsyncBlockDevice;
import io.github.qcowloom.api.BatchCapable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Batch submit: a first pass counts the clusters a batch of writes must allocate, one refcount update reserves
 * them, then all the writes run concurrently. On a device that cannot reserve, the writes simply run.
 */
public final class BatchSubmitter {
    private final AsyncBlockDevice device;

    public BatchSubmitter(AsyncBlockDevice device) {
        this.device = device;
    }

    /** One write of a batch. */
    public record Write(long offset, ByteBuffer data) {
    }

    /** Submits the writes; the future completes when all have (exceptionally if any failed). */
    public CompletableFuture<Void> submit(List<Write> writes) throws IOException {
        if (device.device() instanceof BatchCapable batch) {
            int clusters = 0;
            for (Write w : writes) {
                clusters += batch.clustersToAllocate(w.offset(), w.data().remaining());
            }
            if (clusters > 0) {
                batch.reserve(clusters);
            }
        }
        return CompletableFuture.allOf(writes.stream().map(w -> device.write(w.offset(), w.data()))
                .toArray(CompletableFuture[]::new));
    }
}
