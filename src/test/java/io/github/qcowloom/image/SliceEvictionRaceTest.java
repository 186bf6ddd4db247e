package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.StampedLock;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A writer holding the metadata lock looks up its L2 slice and then changes it; readers that miss the cache evict
 * slices under the cache's own lock meanwhile. The writer's slice must stay in the cache until its change is in
 * it (and then, dirty, until it is written back): changed after an eviction, the change would vanish, the write
 * reading back as zeroes and its new cluster leaking.
 *
 * <p>The gap between the lookup and the change holds no I/O, so the test widens it with the one lock in it: with
 * extended L2 the writer stores the entry's two words under {@link ClusterMapper}'s StampedLock, whose read side
 * the test holds while the readers run.
 */
class SliceEvictionRaceTest {
    private static final int CLUSTER = 16384;
    /** 4 KiB slices of 16-byte extended entries: 256 clusters, 4 MiB of guest data, per slice. */
    private static final long PER_SLICE = 4L << 20;
    private static final int SLICES = 16;

    @TempDir
    Path dir;

    @Test
    void aSliceAWriterHoldsIsNotEvictedByReadersMissingTheCache() throws Exception {
        Path image = dir.resolve("evict.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(SLICES * PER_SLICE).withClusterSize(CLUSTER)
                .withExtendedL2(true));
        byte[] data = new byte[4096];
        Arrays.fill(data, (byte) 0x6b);
        // An L2 cache of 4 slices against 16 slices in use.
        OpenOptions options = OpenOptions.readWriteDefaults().withPool(false).withL2CacheBytes(4 * 4096);
        try (Qcow2Image img = Qcow2Image.open(image, options)) {
            for (int s = 0; s < SLICES; s++) {
                img.write(s * PER_SLICE + CLUSTER, ByteBuffer.wrap(data));
            }
        }
        // Reopened, the cache starts empty: a slice enters it only on a miss, and each miss evicts down to 4.
        try (Qcow2Image img = Qcow2Image.open(image, options)) {
            StampedLock entryLock = twoWordEntries(img);
            long stamp = entryLock.readLock();
            CompletableFuture<Void> written = new CompletableFuture<>();
            Thread writer = new Thread(() -> {
                try {
                    // A new cluster for guest cluster 0: its data, then the entry, in slice 0.
                    img.write(0, ByteBuffer.wrap(data));
                    written.complete(null);
                } catch (Throwable e) {
                    written.completeExceptionally(e);
                }
            }, "writer");
            try {
                writer.start();
                // The writer holds the metadata lock and slice 0, and waits to store the entry's words.
                awaitBlockedOn(writer, entryLock);
                byte[] buf = new byte[512];
                for (int s = 1; s < SLICES; s++) {
                    img.read(s * PER_SLICE + CLUSTER, ByteBuffer.wrap(buf)); // misses: the cache evicts
                }
            } finally {
                entryLock.unlockRead(stamp);
            }
            written.get(30, TimeUnit.SECONDS);
            assertArrayEquals(data, read(img), "the acknowledged write reads back");
        }
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            assertArrayEquals(data, read(img), "the acknowledged write reads back after a reopen");
        }
        CheckResult r = ImageChecker.check(image, "evict.qcow2");
        assertEquals(0, r.corruptions(), r.messages().toString());
        assertEquals(0, r.leaks(), r.messages().toString());
    }

    private static byte[] read(Qcow2Image img) throws Exception {
        byte[] got = new byte[4096];
        img.read(0, ByteBuffer.wrap(got));
        return got;
    }

    /** The lock under which writers store an extended entry's two words (private to the mapper). */
    private static StampedLock twoWordEntries(Qcow2Image img) throws ReflectiveOperationException {
        Field mapperField = Qcow2Image.class.getDeclaredField("mapper");
        mapperField.setAccessible(true);
        ClusterMapper mapper = (ClusterMapper) mapperField.get(img);
        Field lockField = ClusterMapper.class.getDeclaredField("twoWordEntries");
        lockField.setAccessible(true);
        return (StampedLock) lockField.get(mapper);
    }

    private static void awaitBlockedOn(Thread t, Object lock) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (LockSupport.getBlocker(t) != lock) {
            if (!t.isAlive() || System.nanoTime() > deadline) {
                throw new AssertionError("the writer never waited for the entry lock: " + t.getState());
            }
            Thread.sleep(1);
        }
    }
}
