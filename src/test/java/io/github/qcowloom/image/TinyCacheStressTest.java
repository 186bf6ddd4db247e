package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.storage.FileStorage;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tiny metadata caches under concurrent writers, readers and a flush loop: the L2 working set is many times the L2
 * cache (4 slices, the least the options allow), so readers evict slices all the time while writers link, discard
 * and re-link their clusters, and refblock slices are evicted and written back while tables are allocated. Every
 * acknowledged write must read back, before and after a reopen, and the image must check clean. Before writers
 * pinned the slices they change, every run lost writes: dozens read back stale or as zeroes, their clusters leaked,
 * or a discard's old cluster was freed while still referenced and handed out again (the overlap check then marked
 * the image corrupt). The flush-versus-allocateL2 refblock race is rare here; {@link RefblockWriteBackRaceTest}
 * forces it.
 */
class TinyCacheStressTest {
    private static final int CLUSTER = 4096;
    /** 1 GiB at 4 KiB clusters: 512 L2 tables of one slice each, against an L2 cache of 4 slices. */
    private static final long SIZE = 1L << 30;
    /** Most requests go to the first 64 MiB (32 tables); the others allocate tables and clusters all along the run. */
    private static final int HOT_CLUSTERS = (64 << 20) / CLUSTER;
    private static final int WRITERS = 6;
    private static final int READERS = 2;
    private static final long RUN_NANOS = 2_500_000_000L;

    @TempDir
    Path dir;

    @Test
    void everyAcknowledgedWriteSurvivesATinyCache() throws Exception {
        Path image = dir.resolve("tiny.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(SIZE).withClusterSize(CLUSTER));
        int clusters = (int) (SIZE / CLUSTER);
        // What each cluster holds once its last acknowledged request returned: 0 for zeroes, else the byte value.
        byte[] expected = new byte[clusters];
        OpenOptions options = OpenOptions.readWriteDefaults().withPool(false).withL2CacheBytes(4096);
        options = options.withTuning(options.tuning().withRefblockCacheBytes(4096));
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong ops = new AtomicLong();
        try (Qcow2Image img = Qcow2Image.open(FileStorage.open(image, false, false), dir, options);
                ExecutorService threads = Executors.newFixedThreadPool(WRITERS + READERS + 1)) {
            List<Future<?>> done = new ArrayList<>();
            long deadline = System.nanoTime() + RUN_NANOS;
            for (int w = 0; w < WRITERS; w++) {
                int id = w;
                done.add(threads.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(id);
                    byte[] data = new byte[CLUSTER];
                    // Writer w owns the clusters congruent to w: distinct clusters, but every L2 table shared.
                    while (System.nanoTime() < deadline) {
                        int range = rnd.nextInt(4) == 0 ? clusters : HOT_CLUSTERS;
                        int c = rnd.nextInt(range / WRITERS) * WRITERS + id;
                        if (rnd.nextInt(4) == 0) {
                            img.discard((long) c * CLUSTER, CLUSTER);
                            expected[c] = 0;
                        } else {
                            byte v = (byte) (1 + rnd.nextInt(255));
                            Arrays.fill(data, v);
                            img.write((long) c * CLUSTER, ByteBuffer.wrap(data));
                            expected[c] = v;
                        }
                        ops.incrementAndGet();
                    }
                    return null;
                }));
            }
            for (int r = 0; r < READERS; r++) {
                int id = r;
                done.add(threads.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(100 + id);
                    ByteBuffer buf = ByteBuffer.allocate(512);
                    while (!stop.get()) {
                        img.read((long) rnd.nextInt(clusters) * CLUSTER, buf.clear());
                        LockSupport.parkNanos(10_000); // see ExtendedL2WriteInteropTest's readers
                    }
                    return null;
                }));
            }
            done.add(threads.submit(() -> {
                while (!stop.get()) {
                    img.flush();
                }
                return null;
            }));
            try {
                for (int w = 0; w < WRITERS; w++) {
                    done.get(w).get();
                }
            } finally {
                // Readers and the flush loop stop even when a writer failed, so that the failure is reported.
                stop.set(true);
            }
            for (Future<?> f : done) {
                f.get();
            }
            assertReadsBack(img, expected, "before close (" + ops.get() + " requests)");
        }
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            assertReadsBack(img, expected, "after reopen");
        }
        CheckResult r = ImageChecker.check(image, "tiny.qcow2");
        assertEquals(0, r.corruptions(), r.messages().toString());
        assertEquals(0, r.leaks(), r.messages().toString());
    }

    private static void assertReadsBack(Qcow2Image img, byte[] expected, String when) throws Exception {
        byte[] got = new byte[CLUSTER];
        List<String> wrong = new ArrayList<>();
        for (int c = 0; c < expected.length; c++) {
            img.read((long) c * CLUSTER, ByteBuffer.wrap(got));
            for (byte b : got) {
                if (b != expected[c]) {
                    wrong.add("cluster " + c + " reads " + b + ", expected " + expected[c]);
                    break;
                }
            }
        }
        if (!wrong.isEmpty()) {
            fail(when + ": " + wrong.size() + " clusters lost their last write: "
                    + wrong.subList(0, Math.min(5, wrong.size())));
        }
    }
}
