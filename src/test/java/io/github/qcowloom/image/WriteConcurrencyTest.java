package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.AsyncBlockDevice;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Profiles;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.storage.CountingStorage;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Overlapping concurrent writers, every execution model, and lazy refcounts. */
class WriteConcurrencyTest {
    private static final int UNIT = 4096;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    @Test
    void overlappingWritersLeaveOneWrittenValuePerUnit() throws Exception {
        Path image = dir.resolve("o.qcow2");
        int size = 1 << 20;
        ImageCreator.create(image, CreateOptions.defaults(size).withClusterSize(16384));
        ConcurrentHashMap<Integer, Set<Byte>> written = new ConcurrentHashMap<>();
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults());
                ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < 256; t++) {
                int id = t;
                done.add(threads.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(id);
                    byte[] data = new byte[UNIT];
                    for (int i = 0; i < 20; i++) {
                        int unit = rnd.nextInt(size / UNIT);
                        byte value = (byte) (1 + rnd.nextInt(255));
                        written.computeIfAbsent(unit, u -> ConcurrentHashMap.newKeySet()).add(value);
                        Arrays.fill(data, value);
                        img.write((long) unit * UNIT, ByteBuffer.wrap(data));
                        if (i % 7 == 0) {
                            img.flush();
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
            byte[] all = Images.readAll(img, 1 << 20);
            for (int unit = 0; unit < size / UNIT; unit++) {
                byte first = all[unit * UNIT];
                for (int i = 1; i < UNIT; i++) {
                    assertEquals(first, all[unit * UNIT + i], "unit " + unit + " is torn at byte " + i);
                }
                Set<Byte> options = written.getOrDefault(unit, Set.of());
                assertTrue(options.isEmpty() ? first == 0 : options.contains(first),
                        "unit " + unit + " holds " + first + ", written were " + options);
            }
        }
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"leaks\"") || check.contains("\"corruptions\""), check);
    }

    @ParameterizedTest
    @ValueSource(strings = {"virtual", "pool:8", "loop:2"})
    void everyExecutionModelDrivesTheSameDriver(String model) throws Exception {
        Path image = dir.resolve("e.qcow2");
        int size = 8 << 20;
        ImageCreator.create(image, CreateOptions.defaults(size).withClusterSize(4096));
        byte[] expected = new byte[size];
        OpenOptions options = OpenOptions.readWriteDefaults();
        if (model.startsWith("loop:")) { // the loops' requests go through their own rings
            options = options.withTuning(options.tuning().withStorage(StorageBackend.IO_URING));
            assertEquals(ExecutionModel.parse(model), ExecutionModel.parse(model).effective(), "loops run here");
        }
        try (Qcow2Image img = Qcow2Image.open(image, options);
                AsyncBlockDevice async = ExecutionModel.parse(model).drive(img)) {
            List<CompletableFuture<Void>> writes = new ArrayList<>();
            for (int i = 0; i < 2000; i++) {
                byte[] data = new byte[1000];
                Arrays.fill(data, (byte) (i % 251 + 1));
                long off = (long) i * 4000 % (size - 1000);
                System.arraycopy(data, 0, expected, (int) off, data.length);
                // Each request is independent; the later write wins where two overlap, so wait per overlap group.
                writes.add(async.write(off, ByteBuffer.wrap(data)));
                if (i % 64 == 63) {
                    CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)).join();
                    writes.clear();
                }
            }
            CompletableFuture.allOf(writes.toArray(CompletableFuture[]::new)).join();
            async.flush().join();
            assertEquals(-1, Images.firstDifference(expected, Images.readAll(img, 1 << 20)));
        }
        Qemu.img("check", image.toString());
    }

    @Test
    void profilesSelectPoolAndExecution() throws Exception {
        OpenOptions o = Profiles.apply(Profiles.load("threadpool"), OpenOptions.readWriteDefaults());
        assertEquals("pool:64", o.tuning().execution());
        assertFalse(Profiles.apply(Profiles.load("nopool"), OpenOptions.readWriteDefaults()).tuning().pool());
        assertTrue(Profiles.apply(Profiles.load("direct"), OpenOptions.readWriteDefaults()).direct());
    }

    @Test
    void lazyRefcountsSkipRefcountSyncsAndACrashIsRepairedOnOpen() throws Exception {
        Path image = dir.resolve("lazy.qcow2");
        int size = 16 << 20;
        ImageCreator.create(image, CreateOptions.defaults(size).withClusterSize(4096).withLazyRefcounts(true));
        byte[] model = new byte[size];
        Path crashed = dir.resolve("crashed.qcow2");
        CountingStorage counting = new CountingStorage(FileStorage.open(image, false, false));
        try (Qcow2Image img = Qcow2Image.open(counting, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] data = new byte[4096];
            for (int i = 0; i < 500; i++) {
                Arrays.fill(data, (byte) (i % 200 + 1));
                long off = (long) i * 32768;
                img.write(off, ByteBuffer.wrap(data));
                System.arraycopy(data, 0, model, (int) off, data.length);
            }
            img.flush();
            // 16 MiB at 4 KiB clusters needs 8 L2 tables. Lazy: the dirty bit (1), 2 per table (table, L1 entry)
            // and the flush (at most 2) = 19; without lazy refcounts each table costs 3 (26 in all).
            assertTrue(counting.counts().flushes() <= 1 + 2 * 8 + 2, "syncs: " + counting.counts().flushes());
            // A process kill now: everything issued survives, the refcounts were never written.
            Files.copy(image, crashed);
        }
        String info = Qemu.img("info", "--output=json", "-U", crashed.toString());
        assertTrue(info.contains("\"dirty-flag\": true"), info);
        Path qemuCopy = dir.resolve("qemu-repair.qcow2");
        Files.copy(crashed, qemuCopy);
        Qemu.io(qemuCopy, "read 0 512");
        try (Qcow2Image img = Qcow2Image.open(crashed, OpenOptions.readWriteDefaults())) {
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)));
        }
        for (Path p : new Path[] {image, crashed, qemuCopy}) {
            String check = Qemu.img("check", "--output=json", p.toString());
            assertFalse(check.contains("\"leaks\"") || check.contains("\"corruptions\""), p + ": " + check);
        }
    }

    @Test
    void poolThresholdsDoubleUnderDemandAndDecay() throws Exception {
        Path image = dir.resolve("pool.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(64 << 20).withClusterSize(4096));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            io.github.qcowloom.alloc.ClusterPool pool = img.clusterPool();
            int baseHigh = pool.high();
            // One new cluster per write (runs of whole clusters are allocated apart from the pool).
            byte[] data = new byte[512];
            for (int i = 0; i < 8192; i++) {
                img.write((long) i << 12, ByteBuffer.wrap(data));
            }
            int burst = pool.high();
            assertTrue(burst > baseHigh, "a burst doubles the thresholds: " + burst);
            // 25 % a second: after 2.6 s at least one decay step has run (more on an idle machine), at most three.
            Thread.sleep(2600);
            int later = pool.high();
            assertTrue(later <= burst * 3 / 4 && later >= Math.max(baseHigh, burst * 27 / 64 - 1),
                    "decay from " + burst + " to " + later);
        }
        Qemu.img("check", image.toString());
    }
}
