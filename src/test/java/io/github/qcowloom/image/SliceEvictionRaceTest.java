package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.StorageEvent;
import io.github.qcowloom.testing.GatedStorage;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A writer holding the metadata lock looks up its L2 slice and then changes it; readers that miss the cache evict
 * slices under the cache's own lock meanwhile. The writer's slice must stay in the cache until its change is in
 * it (and then, dirty, until it is written back): changed after an eviction, the change would vanish, the write
 * reading back as zeroes and its new cluster leaking.
 *
 * <p>The gap between the lookup and the change holds no I/O; the cache announces the lookup
 * ({@link StorageEvent#CACHE_LOOKUP}), and the test parks the writer there, after its data write.
 */
class SliceEvictionRaceTest {
    private static final int CLUSTER = 4096;
    /** 4 KiB slices of 8-byte entries: 512 clusters, 2 MiB of guest data, per slice. */
    private static final long PER_SLICE = 2L << 20;
    private static final int SLICES = 16;

    @TempDir
    Path dir;

    @Test
    void aSliceAWriterHoldsIsNotEvictedByReadersMissingTheCache() throws Exception {
        Path image = dir.resolve("evict.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(SLICES * PER_SLICE).withClusterSize(CLUSTER));
        byte[] data = new byte[CLUSTER];
        Arrays.fill(data, (byte) 0x6b);
        // An L2 cache of 4 slices against 16 slices in use.
        OpenOptions options = OpenOptions.readWriteDefaults().withPool(false).withL2CacheBytes(4 * 4096);
        try (Qcow2Image img = Qcow2Image.open(image, options)) {
            for (int s = 0; s < SLICES; s++) {
                img.write(s * PER_SLICE + CLUSTER, ByteBuffer.wrap(data));
            }
        }
        // Reopened, the cache starts empty: a slice enters it only on a miss, and each miss evicts down to 4.
        GatedStorage gated = new GatedStorage(FileStorage.open(image, false, false));
        try (Qcow2Image img = Qcow2Image.open(gated, null, options)) {
            GatedStorage.Gate dataWrite = gated.gateWrite((p, n) -> Thread.currentThread().getName().equals("writer"));
            CompletableFuture<Void> written = new CompletableFuture<>();
            Thread writer = Thread.ofPlatform().name("writer").start(() -> {
                try {
                    img.write(0, ByteBuffer.wrap(data)); // a new cluster for guest cluster 0: data, then the entry
                    written.complete(null);
                } catch (Throwable e) {
                    written.completeExceptionally(e);
                }
            });
            assertTrue(dataWrite.awaitParked(), "the writer never wrote its data");
            // The next lookup the writer makes is the one it changes the entry in, holding the metadata lock.
            GatedStorage.Gate lookup = gated.gateEvent(StorageEvent.CACHE_LOOKUP, t -> t == writer);
            dataWrite.release();
            assertTrue(lookup.awaitParked(), "the writer never looked up its slice");
            try {
                byte[] buf = new byte[512];
                for (int s = 1; s < SLICES; s++) {
                    img.read(s * PER_SLICE + CLUSTER, ByteBuffer.wrap(buf)); // misses: the cache evicts
                }
            } finally {
                lookup.release();
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
        byte[] got = new byte[CLUSTER];
        img.read(0, ByteBuffer.wrap(got));
        return got;
    }
}
