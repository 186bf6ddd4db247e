package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.format.Features;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * The header's dirty bit against the allocations it covers, and the header bits' transitions against one another.
 * Clusters the pool holds are leaks on a crash, and with lazy refcounts so is every refcount not yet written: the
 * header must be dirty on disk whenever a crash could leave either. These tests force the interleavings in which a
 * clean could slip past an allocation, or undo a corrupt bit.
 */
class DirtyBitRaceTest {
    private static final int CLUSTER = 4096;
    private static final long WAIT_SECONDS = 10;

    /**
     * The corrupt bit must survive a clean that computed its new value before the corrupt bit was set: each
     * transition is a read-modify-write of the header bits under one lock.
     */
    @Test
    void aConcurrentCleanDoesNotUndoTheCorruptBit() throws Exception {
        MemoryStorage file = new MemoryStorage(new byte[CLUSTER]);
        CountDownLatch writing = new CountDownLatch(1);
        CountDownLatch proceed = new CountDownLatch(1);
        Storage gated = new ForwardingStorage(file) {
            @Override
            public void write(ByteBuffer src, long position) throws IOException {
                if ((src.getLong(src.position()) & Features.INCOMPAT_CORRUPT) != 0 && writing.getCount() > 0) {
                    writing.countDown();
                    await(proceed);
                }
                super.write(src, position);
            }
        };
        HeaderBits bits = new HeaderBits(gated, 3, Features.INCOMPAT_DIRTY);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread corrupt = Thread.ofPlatform().start(() -> run(bits::markCorrupt, failure));
        assertTrue(writing.await(WAIT_SECONDS, TimeUnit.SECONDS), "markCorrupt never wrote");
        // markCorrupt holds the bits' lock, parked in its header write; markClean now waits for that lock.
        Thread clean = Thread.ofPlatform().start(() -> run(bits::markClean, failure));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_SECONDS);
        while (clean.getState() != Thread.State.WAITING) {
            assertTrue(clean.isAlive() && System.nanoTime() < deadline, "markClean did not wait for the lock");
            Thread.onSpinWait();
        }
        proceed.countDown();
        corrupt.join();
        clean.join();
        assertEquals(null, failure.get());
        ByteBuffer onDisk = ByteBuffer.allocate(8);
        file.readFully(onDisk, 72);
        assertEquals(Features.INCOMPAT_CORRUPT, onDisk.getLong(0), "incompatible features on disk");
    }

    @FunctionalInterface
    private interface Step {
        void run() throws IOException;
    }

    private static void run(Step t, AtomicReference<Throwable> failure) {
        try {
            t.run();
        } catch (Throwable e) {
            failure.compareAndSet(null, e);
        }
    }

    private static void await(CountDownLatch latch) {
        try {
            if (!latch.await(WAIT_SECONDS, TimeUnit.SECONDS)) {
                throw new IllegalStateException("the test never released a parked thread");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** Forwards every call to another storage. */
    private static class ForwardingStorage implements Storage {
        private final Storage inner;

        ForwardingStorage(Storage inner) {
            this.inner = inner;
        }

        @Override
        public int read(ByteBuffer dst, long position) throws IOException {
            return inner.read(dst, position);
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            inner.write(src, position);
        }

        @Override
        public void flush() throws IOException {
            inner.flush();
        }

        @Override
        public void punchHole(long position, long length) throws IOException {
            inner.punchHole(position, length);
        }

        @Override
        public void writeZeroes(long position, long length) throws IOException {
            inner.writeZeroes(position, length);
        }

        @Override
        public long size() throws IOException {
            return inner.size();
        }

        @Override
        public void setLength(long length) throws IOException {
            inner.setLength(length);
        }

        @Override
        public void extendTo(long end) throws IOException {
            inner.extendTo(end);
        }

        @Override
        public int alignment() {
            return inner.alignment();
        }

        @Override
        public boolean readOnly() {
            return inner.readOnly();
        }

        @Override
        public void event(StorageEvent event) {
            inner.event(event);
        }

        @Override
        public void close() throws IOException {
            inner.close();
        }
    }
}
