package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
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

/**
 * Reads a whole device in chunks on several virtual threads and hands every chunk to a sink, in no set order. Like
 * qemu-img convert, it asks the source's block status first and reads only the ranges that hold data: ranges that
 * read as zeroes (zero or unallocated clusters) are not read at all.
 */
final class ChunkCopy {
    /** Bytes each worker reads at a time; qemu-img convert also works in chunks of this order. */
    static final int CHUNK = 1 << 20;
    static final int WORKERS = 8;

    private ChunkCopy() {
    }

    /** Receives the chunks of the source; called from many threads. */
    interface Sink {
        /**
         * One chunk (position 0 to limit) of the source at {@code offset}. {@code zero}: the source reported all of
         * it as reading zeroes, so nothing was read and the chunk holds zeroes; false says nothing either way.
         */
        void accept(long offset, ByteBuffer chunk, boolean zero) throws IOException;
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
                        boolean zero = readData(src, off, buf);
                        sink.accept(off, buf, zero);
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

    /**
     * Fills {@code buf} (position 0 to limit) with the source's bytes at {@code offset}, reading only what block
     * status reports as data and filling the rest with zeroes; true if that was all of it (nothing was read).
     */
    private static boolean readData(BlockDevice src, long offset, ByteBuffer buf) throws IOException {
        boolean zero = true;
        int n = buf.limit();
        for (int done = 0; done < n; ) {
            BlockStatus status = src.blockStatus(offset + done, n - done);
            int length = (int) status.length();
            ByteBuffer part = buf.slice(done, length);
            if (status.zero()) {
                while (part.remaining() >= 8) {
                    part.putLong(0);
                }
                while (part.hasRemaining()) {
                    part.put((byte) 0);
                }
            } else {
                src.read(offset + done, part);
                zero = false;
            }
            done += length;
        }
        return zero;
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
