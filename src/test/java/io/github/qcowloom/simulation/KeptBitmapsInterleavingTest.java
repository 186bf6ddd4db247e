package io.github.qcowloom.simulation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.image.BitmapBits;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.testing.BitmapFiles;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.BitSet;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bitmaps a read-write open keeps, under the interleaving explorer: guests writing, zeroing and discarding side
 * by side with a flush and a resize that grows the disk, tiny caches, then the close that stores them. In every
 * schedule the stored bitmap holds exactly the granules the requests touched, and the disabled one nothing.
 */
class KeptBitmapsInterleavingTest {
    private static final long SIZE = 1 << 20;
    private static final int GRANULE = 4096;

    @TempDir
    Path dir;

    @Test
    void everyScheduleStoresExactlyTheGranulesTouched() throws Exception {
        byte[] fresh = BitmapFiles.freshWithBitmaps(dir.resolve("k.qcow2"), SIZE, 4096, GRANULE, 512);
        // Request ranges: [offset, length]; writes (two threads), a zeroing and a discard.
        long[][] writesA = {{0, 4096}, {8192, 100}, {300_000, 9000}};
        long[][] writesB = {{4096, 512}, {700_000, 4096}};
        long[] zeroes = {500_000, 20_000};
        long[] discard = {900_000, 65536};
        long[] grown = {SIZE + 8192, 4096};
        BitSet expected = new BitSet();
        for (long[] r : List.of(writesA[0], writesA[1], writesA[2], writesB[0], writesB[1], zeroes, discard, grown)) {
            expected.set((int) (r[0] / GRANULE), (int) ((r[0] + r[1] - 1) / GRANULE) + 1);
        }
        Simulation.Exploration e = Simulation.explore(0, 300, 1_000_000, sim -> {
            MemoryStorage memory = new MemoryStorage(fresh);
            OpenOptions opts = OpenOptions.readWriteDefaults().withTicker(sim).withL2CacheBytes(4096);
            try (Qcow2Image img = Qcow2Image.open(new SimStorage(memory, sim), null, opts)) {
                Thread a = sim.start("writer a", () -> {
                    for (long[] r : writesA) {
                        img.write(r[0], ByteBuffer.allocate((int) r[1]));
                    }
                });
                Thread b = sim.start("writer b", () -> {
                    for (long[] r : writesB) {
                        img.write(r[0], ByteBuffer.allocate((int) r[1]));
                    }
                    img.flush();
                });
                Thread z = sim.start("zeroes", () -> img.writeZeroes(zeroes[0], zeroes[1], true));
                Thread d = sim.start("discard", () -> img.discard(discard[0], discard[1]));
                Thread grow = sim.start("grow", () -> {
                    img.resize(2 * SIZE);
                    img.write(grown[0], ByteBuffer.allocate((int) grown[1])); // recorded past the old end too
                });
                for (Thread t : List.of(a, b, z, d, grow)) {
                    t.join();
                }
            }
            try (Qcow2Image stored = Qcow2Image.open(MemoryStorage.readOnlyCopy(memory.snapshot()), null,
                    OpenOptions.readOnlyDefaults())) {
                for (BitmapDirectory.Entry entry : stored.persistentBitmaps()) {
                    if (entry.inUse()) {
                        throw new AssertionError(entry.name() + " left in use");
                    }
                    BitmapBits bits = stored.bitmapBits(entry);
                    BitSet set = new BitSet();
                    for (long i = bits.nextSet(0, bits.count()); i < bits.count(); i = bits.nextSet(i + 1,
                            bits.count())) {
                        set.set((int) i);
                    }
                    BitSet want = entry.name().equals("on") ? expected : new BitSet();
                    if (!set.equals(want)) {
                        throw new AssertionError(entry.name() + ": " + set + ", not " + want);
                    }
                }
            }
        });
        System.out.println("kept bitmaps: " + e.distinct() + " interleavings");
        assertNull(e.failed(), () -> "seed " + e.failed().seed() + ": " + e.failed().failure());
        assertEquals(300, e.runs());
    }
}
