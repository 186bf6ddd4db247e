package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.StorageBackend;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Many threads at once through the shared io_uring queue: virtual and platform threads, direct and heap buffers,
 * reads, writes and flushes, so that submissions combine, completions are handed out by every kind of thread
 * (submitter, resumed request, completion thread) and a request alone in the process goes directly. Each thread
 * owns a region and checks every read against what it wrote; at the end FileChannel reads the whole file back.
 */
class UringStressTest {
    private static final int BLOCK = 4096;
    private static final int THREADS = 48;
    private static final int BLOCKS_PER_THREAD = 16;
    private static final int OPS = 400;

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    @Timeout(60) // a lost submission or completion shows as a hang
    void everyReadSeesTheThreadsOwnLastWrite(boolean direct) throws Exception {
        Path file = dir.resolve("stress");
        byte[][] model = new byte[THREADS * BLOCKS_PER_THREAD][BLOCK];
        AtomicReference<Throwable> failure = new AtomicReference<>();
        try (FileStorage s = FileStorage.create(file, direct, StorageBackend.IO_URING)) {
            assertEquals(StorageBackend.IO_URING, s.backend());
            s.setLength((long) model.length * BLOCK);
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int id = t;
                Runnable body = () -> {
                    try {
                        runOwner(s, id, model);
                    } catch (Throwable e) {
                        failure.compareAndSet(null, e);
                    }
                };
                // A quarter platform threads: they park and are unparked like the pool model's threads.
                threads.add(id % 4 == 0 ? Thread.ofPlatform().start(body) : Thread.ofVirtual().start(body));
            }
            for (Thread t : threads) {
                t.join();
            }
            if (failure.get() != null) {
                throw new AssertionError("a thread failed", failure.get());
            }
            s.flush();
        }
        try (FileStorage check = FileStorage.open(file, true, false, StorageBackend.FILECHANNEL)) {
            for (int b = 0; b < model.length; b++) {
                ByteBuffer got = ByteBuffer.allocate(BLOCK);
                check.readFully(got, (long) b * BLOCK);
                assertArrayEquals(model[b], got.array(), "block " + b);
            }
        }
    }

    private static void runOwner(FileStorage s, int id, byte[][] model) throws Exception {
        SplittableRandom rnd = new SplittableRandom(id);
        ByteBuffer aligned = ByteBuffer.allocateDirect(2 * BLOCK).alignedSlice(BLOCK).slice(0, BLOCK);
        for (int op = 0; op < OPS; op++) {
            int block = id * BLOCKS_PER_THREAD + rnd.nextInt(BLOCKS_PER_THREAD);
            long at = (long) block * BLOCK;
            ByteBuffer buf = rnd.nextBoolean() ? aligned.clear() : ByteBuffer.allocate(BLOCK);
            int kind = rnd.nextInt(10);
            if (kind < 5) {
                byte[] data = new byte[BLOCK];
                rnd.nextBytes(data);
                buf.put(0, data);
                s.write(buf, at);
                model[block] = data;
            } else if (kind < 9) {
                s.readFully(buf, at);
                byte[] got = new byte[BLOCK];
                buf.get(0, got);
                assertArrayEquals(model[block], got, "thread " + id + " block " + block + " op " + op);
            } else {
                s.flush();
            }
        }
    }
}
