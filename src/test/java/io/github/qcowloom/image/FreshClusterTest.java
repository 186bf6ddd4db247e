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
import io.github.qcowloom.alloc.NewCluster;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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
     * Freed clusters that the pool's supply hands out again are fresh (a write into one skips the zeroes around its
     * data) because the supply zeroes them on the host first: here the host keeps what a discard frees (as where no
     * hole can be punched), and the clusters handed out again still read as zeroes.
     */
    @Test
    void freedClustersHandedOutAgainReadAsZeroes() throws Exception {
        Path image = dir.resolve("r.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(1 << 20));
        MemoryStorage memory = new MemoryStorage(Files.readAllBytes(image));
        Storage keepsDiscarded = new ForwardingStorage(memory) {
            @Override
            public void discard(long position, long length) {
                // the host keeps the bytes
            }
        };
        int bytes = 4 * 65536;
        try (Qcow2Image img = Qcow2Image.open(keepsDiscarded, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] data = new byte[bytes];
            Arrays.fill(data, (byte) 0x5a);
            img.write(0, ByteBuffer.wrap(data));
            img.flush();
            long host = img.blockStatus(0, bytes).host().offset();
            img.discard(0, bytes);
            img.flush(); // the entries' removal is durable: the clusters are free
            ClusterSupply supply = img.metadataWriter().supply();
            List<NewCluster> again = supply.allocate(4);
            assertEquals(host, again.getFirst().at().bytes(), "the freed clusters, handed out again");
            assertTrue(again.stream().allMatch(NewCluster::fresh));
            byte[] held = new byte[bytes];
            memory.readFully(ByteBuffer.wrap(held), host);
            assertArrayEquals(new byte[bytes], held);
            supply.release(again);
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
