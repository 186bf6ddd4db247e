package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.ReadOnlyImageException;
import io.github.qcowloom.storage.CountingStorage;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Writes through our write path, checked by the real qemu-img: no corruption, no leak after close, and the guest
 * contents equal a byte-array model (qemu-img compare against the model's raw file).
 */
class WritePathInteropTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    static Stream<CreateOptions> layouts() {
        List<CreateOptions> out = new ArrayList<>();
        for (int cs : new int[] {512, 4096, 65536, 2 << 20}) {
            out.add(CreateOptions.defaults(0).withVersion(2).withClusterSize(cs));
            for (int rb : new int[] {1, 16, 64}) {
                out.add(CreateOptions.defaults(0).withClusterSize(cs).withRefcountBits(rb));
            }
        }
        return out.stream();
    }

    /** Writes random-sized pieces at random offsets into both the image and the model, flushing now and then. */
    private static void randomWrites(Qcow2Image img, byte[] model, long seed, int count) throws IOException {
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = 0; i < count; i++) {
            int len = 1 + rnd.nextInt(rnd.nextBoolean() ? 5000 : 200_000);
            int off = rnd.nextInt(model.length - len);
            byte[] data = new byte[len];
            Arrays.fill(data, (byte) (1 + rnd.nextInt(255)));
            data[0] = (byte) i;
            img.write(off, ByteBuffer.wrap(data));
            System.arraycopy(data, 0, model, off, len);
            if (rnd.nextInt(10) == 0) {
                img.flush();
            }
        }
    }

    private void assertQemuAgrees(Path image, byte[] model) throws IOException {
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
        Path raw = dir.resolve("model.raw");
        Files.write(raw, model);
        Qemu.img("compare", "-f", "qcow2", "-F", "raw", image.toString(), raw.toString());
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)));
        }
    }

    @ParameterizedTest
    @MethodSource("layouts")
    void randomWritesPassQemuCheckAndCompare(CreateOptions layout) throws IOException {
        Path image = dir.resolve("w.qcow2");
        int size = (6 << 20) + 1536;
        ImageCreator.create(image, layout.withSize(size));
        byte[] model = new byte[size];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            randomWrites(img, model, layout.hashCode(), 60);
        }
        assertQemuAgrees(image, model);
    }

    @Test
    void copiesOnWriteOverQemuDataCompressedClustersAndBackingFiles() throws IOException {
        Path raw = dir.resolve("base.raw");
        Qemu.img("create", "-q", "-f", "raw", raw.toString(), "4M");
        Qemu.ioFormat("raw", raw, "write -P 0x21 0 4M");
        Path base = dir.resolve("base.qcow2");
        Qemu.img("convert", "-q", "-c", "-f", "raw", "-O", "qcow2", raw.toString(), base.toString());
        Path top = dir.resolve("top.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top.toString(), "6M");
        Qemu.io(top, "write -P 0x31 1M 64k");
        byte[] model = Qemu.toRaw(top, dir);
        try (Qcow2Image img = Qcow2Image.open(top, OpenOptions.readWriteDefaults())) {
            randomWrites(img, model, 7, 40);
        }
        assertQemuAgrees(top, model);

        // Overwriting compressed clusters frees their packed bytes exactly as QEMU counts them.
        byte[] baseModel = Qemu.toRaw(base, dir);
        try (Qcow2Image img = Qcow2Image.open(base, OpenOptions.readWriteDefaults())) {
            randomWrites(img, baseModel, 11, 40);
        }
        assertQemuAgrees(base, baseModel);
    }

    @Test
    void alternatingWritersStayConsistent() throws IOException {
        Path image = dir.resolve("alt.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(8 << 20).withClusterSize(4096));
        byte[] model = new byte[8 << 20];
        for (int round = 0; round < 3; round++) {
            try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
                randomWrites(img, model, round, 30);
            }
            int off = (round + 1) << 20;
            Qemu.io(image, "write -P 0x" + (40 + round) + " " + off + " 12k");
            Arrays.fill(model, off, off + 12 * 1024, (byte) (0x40 + round));
            assertQemuAgrees(image, model);
        }
    }

    @Test
    void manyVirtualThreadsWriteAtOnce() throws Exception {
        Path image = dir.resolve("vt.qcow2");
        int size = 32 << 20;
        ImageCreator.create(image, CreateOptions.defaults(size).withClusterSize(4096));
        byte[] model = new byte[size];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults());
                ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < 256; t++) {
                int id = t;
                done.add(threads.submit(() -> {
                    // Disjoint 128 KiB stripes, written in unaligned pieces that share clusters with each other.
                    byte[] data = new byte[1000];
                    Arrays.fill(data, (byte) (id + 1));
                    for (int i = 0; i < 128; i++) {
                        int off = id * 131072 + i * 1000;
                        img.write(off, ByteBuffer.wrap(data));
                        if (i % 50 == 0) {
                            img.flush();
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        }
        for (int t = 0; t < 256; t++) {
            Arrays.fill(model, t * 131072, t * 131072 + 128_000, (byte) (t + 1));
        }
        assertQemuAgrees(image, model);
    }

    @Test
    void allocatingWritesDoNotSyncAndNewL2TablesCostThree() throws IOException {
        Path image = dir.resolve("s.qcow2");
        // 512 MiB per L2 table at 64 KiB clusters: 10 000 4 KiB writes spread over 2 GiB need 4 tables.
        long size = 2L << 30;
        ImageCreator.create(image, CreateOptions.defaults(size));
        CountingStorage counting = new CountingStorage(FileStorage.open(image, false, false));
        try (Qcow2Image img = Qcow2Image.open(counting, dir, OpenOptions.readWriteDefaults())) {
            ByteBuffer buf = ByteBuffer.allocate(4096);
            long before = counting.counts().flushes();
            for (int i = 0; i < 10_000; i++) {
                img.write((long) i * (size / 10_000) & -4096L, buf.clear());
            }
            long syncs = counting.counts().flushes() - before;
            assertTrue(syncs <= 3 * 4 + 2, "host syncs for 10 000 allocating writes: " + syncs);
        }
        Qemu.img("check", image.toString());
    }

    @Test
    void wholeNewClustersAreAllocatedAsOneRunAndWrittenOnce() throws IOException {
        Path image = dir.resolve("run.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(8 << 20));
        CountingStorage counting = new CountingStorage(FileStorage.open(image, false, false));
        byte[] model = new byte[8 << 20];
        ByteBuffer data = ByteBuffer.allocate((2 << 20) + 4096);
        new SplittableRandom(3).nextBytes(data.array());
        try (Qcow2Image img = Qcow2Image.open(counting, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.allocate(1)); // the L2 table, and a cluster the run must not take
            long before = counting.counts().writes();
            img.write(65536, data.duplicate()); // 32 whole new clusters, then 4 KiB of one more
            assertEquals(2, counting.counts().writes() - before, "one write for the run, one for the last cluster");
            System.arraycopy(data.array(), 0, model, 65536, data.capacity());
        }
        assertQemuAgrees(image, model);
        // The first data cluster, the 32 clusters and the one after them are one extent on the host, in guest order,
        // as QEMU would place them. (The image takes the host space qemu-img's takes, so QEMU reads the unwritten
        // tail of the last cluster as data, not as a hole: it does not take the image for a preallocated one.)
        String map = Qemu.img("map", "--output=json", image.toString());
        assertTrue(map.contains("\"start\": 0, \"length\": 2228224, \"depth\": 0, \"present\": true,"
                + " \"zero\": false, \"data\": true, \"offset\": 327680}"), map);
    }

    @Test
    void runsRaceWritesIntoTheirClusters() throws Exception {
        // Every writer writes the same bytes where it writes, so any order leaves them; a run and a single-cluster
        // write that both allocate one cluster, or lose one's data, show in the contents or in qemu-img check.
        Path image = dir.resolve("race.qcow2");
        int size = 16 << 20;
        ImageCreator.create(image, CreateOptions.defaults(size).withClusterSize(4096));
        byte[] model = new byte[size];
        new SplittableRandom(9).nextBytes(model);
        OpenOptions tiny = OpenOptions.readWriteDefaults().withL2CacheBytes(4096);
        try (Qcow2Image img = Qcow2Image.open(image, tiny);
                ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < 32; t++) {
                int id = t;
                done.add(threads.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(id);
                    for (int i = 0; i < 60; i++) {
                        boolean run = rnd.nextBoolean();
                        int len = run ? 4096 * (2 + rnd.nextInt(40)) : 1 + rnd.nextInt(6000);
                        int off = run ? 4096 * rnd.nextInt(size / 4096 - 42) : rnd.nextInt(size - len);
                        img.write(off, ByteBuffer.wrap(model, off, len).slice());
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
            // What no writer wrote reads as zeroes: the model says so too.
            byte[] seen = Images.readAll(img, 1 << 20);
            for (int i = 0; i < size; i++) {
                if (seen[i] == 0) {
                    model[i] = 0;
                }
            }
        }
        assertQemuAgrees(image, model);
    }

    @Test
    void thePoolsFallocatedClustersAreReleasedAtClose() throws Exception {
        // With O_DIRECT through io_uring the pool fallocates the clusters it takes past the end of the file; the
        // ones no write used must not stay allocated on the host after close.
        Path image = dir.resolve("direct.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(64 << 20));
        ByteBuffer block = ByteBuffer.allocateDirect(8192).alignedSlice(4096);
        long atClose;
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withDirect(true))) {
            for (int i = 0; i < 100; i++) {
                img.write((long) i << 16, block.clear());
            }
            img.flush();
            // The pool refills in the background: wait for 16 clusters in it (1 MiB fallocated past the image's end).
            // (The wait used to be for the host's bytes to reach the file's size, which the holes in the first
            // clusters of the file never let it do: it always ran out, and the pool might still be short then.)
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (img.clusterPool().size() < 16 && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            atClose = Images.hostBytes(image);
        }
        String check = Qemu.img("check", "--output=json", image.toString());
        long end = Qemu.imageEndOffset(check);
        long afterClose = Images.hostBytes(image);
        // Measured against the host's bytes after close, not against the image's end: where the data landed depends
        // on when the pool refilled, and clusters it gave back may lie below the last one a write used.
        assertTrue(atClose > afterClose + (512 << 10), "the pool's clusters were fallocated, and released at close: "
                + atClose + " bytes on the host before close, " + afterClose + " after");
        assertTrue(afterClose <= end + (64 << 10), "after close " + afterClose + " bytes on the host, image end offset "
                + end);
        assertFalse(check.contains("\"leaks\""), check);
    }

    @Test
    void withoutHostSyncsNothingIsSyncedAndTheClosedImageIsWhole() throws IOException {
        Path image = dir.resolve("unsafe.qcow2");
        int size = 24 << 20;
        ImageCreator.create(image, CreateOptions.defaults(size).withClusterSize(4096));
        byte[] model = new byte[size];
        CountingStorage counting = new CountingStorage(FileStorage.open(image, false, false));
        // A 16 KiB L2 cache: most writes evict a dirty table, which without no-flush costs ordered syncs.
        OpenOptions unsafe = OpenOptions.readWriteDefaults().withHostSyncs(false).withL2CacheBytes(16 << 10);
        try (Qcow2Image img = Qcow2Image.open(counting, dir, unsafe)) {
            randomWrites(img, model, 5, 80);
            img.flush();
        }
        assertEquals(0, counting.counts().flushes(), "host syncs under cache.no-flush");
        assertTrue(counting.counts().writes() > 80, "the flushes still wrote the tables");
        assertQemuAgrees(image, model);
    }

    @Test
    void readOnlyImagesRefuseWrites() throws IOException {
        Path image = dir.resolve("ro.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(1 << 20));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertThrows(ReadOnlyImageException.class, () -> img.write(0, ByteBuffer.allocate(512)));
        }
    }
}
