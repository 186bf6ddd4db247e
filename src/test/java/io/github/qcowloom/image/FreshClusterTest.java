package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.crashkit.CrashCheck;
import io.github.qcowloom.crashkit.CrashInvariants;
import io.github.qcowloom.crashkit.CrashMode;
import io.github.qcowloom.crashkit.CrashOptions;
import io.github.qcowloom.crashkit.CrashSimStorage;
import io.github.qcowloom.crashkit.GuestHistory;
import io.github.qcowloom.storage.CountingStorage;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A partial write skips writing the zeroes around its data only in a cluster that was never written, or that the
 * pool's supply zeroed before handing it out again. A freed
 * metadata cluster (here the L1 table a first growth wrote, freed by a second) holds old bytes, so a write that
 * reuses it must still zero the rest of the cluster. And the file must reach the end of a fresh cluster before
 * its L2 entry is durable, or a later write into the cluster appends, which a crash may tear.
 */
class FreshClusterTest {
    @TempDir
    Path dir;

    /**
     * Over a backing file, the head and tail around a partial write in a fresh cluster are left holes where the
     * backing file reads as zeroes there (unallocated, zero clusters, past its end), as QEMU's is_zero_cow finds, and
     * copied where it holds data; before, every cluster got the backing file's zeroes written around its data.
     */
    @Test
    void aPartialWriteOverBackingZeroesWritesOnlyItsData() throws Exception {
        int c = 65536;
        Path base = dir.resolve("base.qcow2");
        ImageCreator.create(base, CreateOptions.defaults(1 << 20));
        byte[] full = new byte[c];
        Arrays.fill(full, (byte) 0x11);
        try (Qcow2Image img = Qcow2Image.open(base, OpenOptions.readWriteDefaults())) {
            img.write(0, ByteBuffer.wrap(full)); // cluster 0: data; 1: unallocated
            img.write(2L * c, ByteBuffer.wrap(full));
            img.writeZeroes(2L * c, c, false); // 2: a zero cluster
            img.write(3L * c, ByteBuffer.wrap(full, 0, 4096)); // 3: data, zeroes after its first 4 KiB
        }
        Path top = dir.resolve("top.qcow2");
        ImageCreator.create(top, CreateOptions.defaults(2 << 20).withBacking("base.qcow2", "qcow2"));
        CountingStorage host = new CountingStorage(new MemoryStorage(Files.readAllBytes(top)));
        byte[] data = new byte[512];
        Arrays.fill(data, (byte) 0x77);
        try (Qcow2Image img = Qcow2Image.open(host, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(31L * c, ByteBuffer.wrap(data)); // the L2 table made, before the writes counted
            // 20 lies past the base's end; 0 and 3 hold data around the write, copied with it
            for (int cluster : List.of(0, 1, 2, 3, 20)) {
                long before = host.counts().bytesWritten();
                img.write((long) cluster * c + 8192, ByteBuffer.wrap(data));
                assertEquals(cluster == 0 || cluster == 3 ? c : data.length, host.counts().bytesWritten() - before,
                        "bytes written into cluster " + cluster);
                byte[] expected = new byte[c];
                if (cluster == 0) {
                    Arrays.fill(expected, (byte) 0x11);
                } else if (cluster == 3) {
                    Arrays.fill(expected, 0, 4096, (byte) 0x11);
                }
                System.arraycopy(data, 0, expected, 8192, data.length);
                byte[] read = new byte[c];
                img.read((long) cluster * c, ByteBuffer.wrap(read));
                assertArrayEquals(expected, read, "cluster " + cluster);
            }
        }
    }

    @Test
    void reusedMetadataClusterIsZeroedAroundAPartialWrite() throws Exception {
        Path image = dir.resolve("f.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(1 << 20));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] data = new byte[65536];
            Arrays.fill(data, (byte) 0x5a);
            img.write(0, ByteBuffer.wrap(data)); // an L2 table, so the L1 copies below hold a non-zero entry
            img.resize(1L << 40); // L1 grows into a new cluster past the end of the file
            img.resize(100L << 40); // ... and again: the first grown table is freed
            img.flush(); // the free becomes durable, so the cluster may be reused
            img.write((1L << 30) + 512, ByteBuffer.wrap(new byte[] {1, 2, 3}));
            byte[] cluster = new byte[65536];
            img.read(1L << 30, ByteBuffer.wrap(cluster));
            byte[] expected = new byte[65536];
            expected[512] = 1;
            expected[513] = 2;
            expected[514] = 3;
            assertArrayEquals(expected, cluster);
        }
    }

    /**
     * Freed clusters handed out again (here to a batch's reservation, as to the pool) are fresh, so that a partial
     * write into one skips the zeroes around its data, only where the host has punched them to zeroes first; where
     * it keeps their bytes (no hole can be punched) they are not, and the write writes the zeroes. Either way the
     * guest reads zeroes around what it wrote.
     */
    @ParameterizedTest(name = "the host punches holes: {0}")
    @ValueSource(booleans = {true, false})
    void freedClustersHandedOutAgainReadAsZeroesAroundNewData(boolean punches) throws Exception {
        Path image = dir.resolve("r.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(1 << 20));
        MemoryStorage memory = new MemoryStorage(Files.readAllBytes(image));
        CountingStorage host = new CountingStorage(new ForwardingStorage(memory) {
            @Override
            public boolean discard(long position, long length) throws java.io.IOException {
                return punches && super.discard(position, length); // else the host keeps the bytes
            }
        });
        int c = 65536;
        try (Qcow2Image img = Qcow2Image.open(host, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] old = new byte[4 * c];
            Arrays.fill(old, (byte) 0x5a);
            img.write(0, ByteBuffer.wrap(old));
            img.flush();
            long freed = img.blockStatus(0, c).host().offset();
            img.discard(0, 4 * c);
            img.flush(); // the entries' removal is durable: the clusters are free
            img.reserve(4);
            long before = host.counts().bytesWritten();
            for (int i = 0; i < 4; i++) {
                img.write(8L * c + (long) i * c + 512, ByteBuffer.wrap(new byte[] {1, 2, 3}));
            }
            long written = host.counts().bytesWritten() - before;
            // Fresh: 3 bytes a write. Not: the cluster, the zeroes around the data included.
            assertEquals(punches ? 4 * 3 : 4 * c, written, "bytes the four writes wrote");
            assertEquals(freed, img.blockStatus(8L * c, c).host().offset(), "the freed clusters, used again");
            byte[] expected = new byte[c];
            expected[512] = 1;
            expected[513] = 2;
            expected[514] = 3;
            for (int i = 0; i < 4; i++) {
                byte[] cluster = new byte[c];
                img.read(8L * c + (long) i * c, ByteBuffer.wrap(cluster));
                assertArrayEquals(expected, cluster, "cluster " + i);
            }
        }
    }

    // A partial write into a fresh cluster at the end of the file could leave the file ending inside the cluster;
    // the next write into that cluster, after a flush made its L2 entry durable, would then append to the file,
    // and a crash with torn appends would show the guest garbage there (found by CrashProperties).
    @Test
    void freshClusterIsInsideTheFileOnceItsL2EntryIsDurable() throws Exception {
        Path file = dir.resolve("t.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(1 << 20));
        CrashSimStorage sim = new CrashSimStorage(Files.readAllBytes(file));
        GuestHistory history = new GuestHistory(1 << 20);
        try (Qcow2Image img = Qcow2Image.open(sim, null, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(65536, ByteBuffer.wrap(history.write(65536, 4096))); // the L2 table, then cluster 1's
            img.write(10240, ByteBuffer.wrap(history.write(10240, 1536))); // a fresh cluster at the end
            img.flush();
            history.flushed(sim.flushCount());
            assertEquals(0, sim.currentImage().length % 65536, "the file ends on a cluster boundary");
            img.write(2560, ByteBuffer.wrap(history.write(2560, 22016)));
            img.flush();
            history.flushed(sim.flushCount());
        }
        List<CrashCheck> failed = sim.crashStates(CrashOptions.defaults().withMode(CrashMode.TORN_APPENDS))
                .map(s -> CrashInvariants.check(s, history)).filter(c -> !c.ok()).toList();
        assertTrue(failed.isEmpty(), failed.toString());
    }
}
