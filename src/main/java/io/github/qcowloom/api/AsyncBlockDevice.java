package io.github.qcowloom.api;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;

/**
 * Any {@link BlockDevice} driven asynchronously: each request runs as the same blocking, straight-line code on a
 * thread of the given executor (a virtual thread per request by default) and completes a future. Failures complete
 * the future exceptionally with the request's {@link IOException}. Closing shuts the executor down; the device
 * stays open (its owner closes it).
 */
public final class AsyncBlockDevice implements AutoCloseable {
    private final BlockDevice device;
    private final ExecutorService executor;

    public AsyncBlockDevice(BlockDevice device, ExecutorService executor) {
        this.device = device;
        this.executor = executor;
    }

    /** The default: a new virtual thread per request. */
    public static AsyncBlockDevice of(BlockDevice device) {
        return new AsyncBlockDevice(device, java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor());
    }

    public BlockDevice device() {
        return device;
    }

    /** A blocking request body. */
    @FunctionalInterface
    private interface Request {
        void run() throws IOException;
    }

    private CompletableFuture<Void> submit(Request r) {
        return CompletableFuture.runAsync(() -> {
            try {
                r.run();
            } catch (IOException e) {
                throw new CompletionException(e);
            } catch (UncheckedIOException e) {
                throw new CompletionException(e.getCause());
            }
        }, executor);
    }

    public CompletableFuture<Void> read(long offset, ByteBuffer dst) {
        return submit(() -> device.read(offset, dst));
    }

    public CompletableFuture<Void> write(long offset, ByteBuffer src) {
        return submit(() -> device.write(offset, src));
    }

    public CompletableFuture<Void> discard(long offset, long length) {
        return submit(() -> device.discard(offset, length));
    }

    public CompletableFuture<Void> writeZeroes(long offset, long length, boolean mayUnmap) {
        return submit(() -> device.writeZeroes(offset, length, mayUnmap));
    }

    public CompletableFuture<Void> flush() {
        return submit(device::flush);
    }

    /** Stops accepting requests and waits for those in flight. */
    @Override
    public void close() {
        executor.close();
    }
}
