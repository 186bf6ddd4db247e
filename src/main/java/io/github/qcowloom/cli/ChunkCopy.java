package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;

/** Reads a whole device in chunks on several virtual threads and hands every chunk to a sink, in no set order. */
final class ChunkCopy {
    /** Bytes each worker reads at a time; qemu-img convert also works in chunks of this order. */
    static final int CHUNK = 1 << 20;
    static final int WORKERS = 8;

    private ChunkCopy() {
    }

    /** Receives one chunk (position 0 to limit) of the source at {@code offset}; called from many threads. */
    interface Sink {
        void accept(long offset, ByteBuffer chunk) throws IOException;
    }

    /**
     * Workers take chunks of {@code chunk} bytes (the last may be shorter) in order from a shared counter;
     * {@code progress} gets the bytes done after each.
     */
    static void run(BlockDevice src, int chunk, Sink sink, LongConsumer progress) throws IOException {
        long size = src.size();
        AtomicLong next = new AtomicLong();
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<Void>> workers = new ArrayList<>();
            for (int w = 0; w < WORKERS; w++) {
                workers.add(pool.submit(() -> {
                    // Direct: FileChannel copies heap buffers through a temporary direct one on every call.
                    ByteBuffer buf = ByteBuffer.allocateDirect(chunk);
                    for (long off = next.getAndAdd(chunk); off < size; off = next.getAndAdd(chunk)) {
                        int n = (int) Math.min(chunk, size - off);
                        buf.clear().limit(n);
                        src.read(off, buf);
                        buf.flip();
                        sink.accept(off, buf);
                        progress.accept(n);
                    }
                    return null;
                }));
            }
            for (Future<Void> f : workers) {
                f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new IOException(e.getCause());
        }
    }

    static boolean isZero(ByteBuffer b) {
        int i = b.position();
        int end = b.limit();
        for (; i + 8 <= end; i += 8) {
            if (b.getLong(i) != 0) {
                return false;
            }
        }
        for (; i < end; i++) {
            if (b.get(i) != 0) {
                return false;
            }
        }
        return true;
    }
}
