package io.github.qcowloom.simulation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A resize with preallocation ({@link Qcow2Image#resize(long, Preallocation)}) under the interleaving explorer, beside
 * two guests writing, one of them into the new space as soon as the disk has grown, with a flush, 512-byte clusters
 * and a one-table L2 cache. In every schedule a guest that sees the new size finds every cluster of the new space
 * placed already (the resize is one exclusive step), each sector reads a value the history allows (the grown space
 * zeroes where nothing was written), and our check finds no corruption and no leak.
 */
class PreallocationInterleavingTest {
    /** 512-byte clusters: an L2 table maps 64 of them, so the grown space spans tables the one-slice cache swaps. */
    private static final int CLUSTER = 512;
    private static final long SIZE = 64 * CLUSTER;
    private static final long GROWN = 3 * SIZE;

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(value = Preallocation.class, names = {"METADATA", "FALLOC", "FULL"})
    void writesRacingThePreallocationKeepTheirData(Preallocation mode) throws Exception {
        Path file = dir.resolve("p.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(SIZE).withClusterSize(CLUSTER));
        byte[] fresh = Files.readAllBytes(file);
        Simulation.Exploration e = Simulation.explore(0, 150, 1_000_000, sim -> {
            SectorHistory history = new SectorHistory(false);
            MemoryStorage memory = new MemoryStorage(fresh);
            OpenOptions opts = OpenOptions.readWriteDefaults().withTicker(sim).withL2CacheBytes(CLUSTER)
                    .withPool(false);
            try (Qcow2Image img = Qcow2Image.open(new SimStorage(memory, sim), null, opts)) {
                long[] growth = {0, Long.MAX_VALUE}; // when the resize began; when a guest first saw the new size
                Thread grow = sim.start("grow", () -> {
                    growth[0] = history.tick();
                    img.resize(GROWN, mode);
                    // The new space reads as zeroes from the moment the size changed, which the guest's first
                    // write into it follows: recorded as ending there, so that losing that write is caught.
                    long end = history.tick();
                    growth[1] = Math.min(growth[1], end);
                });
                Thread old = sim.start("old space", () -> {
                    for (long at : new long[] {0, 5 * CLUSTER + 512, SIZE - CLUSTER}) {
                        write(img, history, at, CLUSTER);
                    }
                    img.flush();
                });
                Thread fresher = sim.start("new space", () -> {
                    // Each write goes into the new space once the disk has grown, else into the old.
                    for (long at : new long[] {SIZE + 3 * CLUSTER, SIZE + 40 * CLUSTER, SIZE + 70 * CLUSTER,
                        2 * SIZE + 3 * CLUSTER, 2 * SIZE + 33 * CLUSTER, GROWN - 1024}) {
                        boolean grown = img.size() > at;
                        if (grown) {
                            growth[1] = Math.min(growth[1], history.tick());
                            for (long c = SIZE / CLUSTER; c < GROWN / CLUSTER; c++) {
                                if (!img.blockStatus(c * CLUSTER, CLUSTER).present()) {
                                    throw new AssertionError("the new size seen before cluster " + c + " was placed");
                                }
                            }
                        }
                        write(img, history, grown ? at : at % SIZE, 1024);
                    }
                });
                for (Thread t : List.of(grow, old, fresher)) {
                    t.join();
                }
                history.resized(growth[0], growth[1], SIZE, GROWN, GROWN);
            }
            byte[] image = memory.snapshot();
            CheckResult r = ImageChecker.check(new MemoryStorage(image), "p.qcow2");
            if (r.corruptions() > 0 || r.leaks() > 0 || r.checkErrors() > 0) {
                throw new AssertionError(r.corruptions() + " corruptions, " + r.leaks() + " leaks: "
                        + r.messages().stream().limit(4).toList());
            }
            try (Qcow2Image img = Qcow2Image.open(new MemoryStorage(image), null, OpenOptions.readOnlyDefaults())) {
                long t = history.tick();
                ByteBuffer all = ByteBuffer.allocate((int) GROWN);
                img.read(0, all);
                history.read(t, t, 0, all.flip(), "read back");
                for (long c = SIZE / CLUSTER; c < GROWN / CLUSTER; c++) {
                    if (!img.blockStatus(c * CLUSTER, CLUSTER).present()) {
                        throw new AssertionError("cluster " + c + " of the new space was not preallocated");
                    }
                }
            }
            if (!history.violations().isEmpty()) {
                throw new AssertionError(history.violations());
            }
        });
        System.out.println("preallocation " + mode + ": " + e.distinct() + " interleavings");
        assertNull(e.failed(), () -> "seed " + e.failed().seed() + ": " + e.failed().failure());
        assertEquals(150, e.runs());
    }

    private static void write(Qcow2Image img, SectorHistory history, long at, int length) throws Exception {
        long t0 = history.tick();
        int id = history.newId();
        ByteBuffer b = ByteBuffer.allocate(length);
        SectorHistory.fill(b, at / SectorHistory.SECTOR, id);
        img.write(at, b.flip());
        history.wrote(t0, history.tick(), at / SectorHistory.SECTOR, length / SectorHistory.SECTOR, id, "write");
    }
}
