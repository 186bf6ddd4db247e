package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.snapshot.Snapshots;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.GatedStorage;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Extended L2: a write into a cluster shared with a snapshot copies every allocated subcluster into a new cluster
 * and marks them all allocated there (with standard L2 it copies the whole cluster). A write-zeroes or discard of other subclusters (or of the whole cluster) of
 * the same cluster that completes while that write is between its copy-on-write read and its L2 update must not be
 * undone by it: the metadata-only zeroing takes the guest cluster's lock, as writes do, so it runs before the copy
 * or after the link. The interleaving is forced: the writer is parked just before its data write.
 */
class SubclusterZeroesRaceTest {
    private static final int CS = 65536;
    private static final int SC = CS / 32;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** What runs while the writer is parked, and what it leaves in cluster 1 (all old data before). */
    enum Zeroing {
        /**
         * Write-zeroes of subclusters 10 and 11, zeroized in the bitmap (with standard L2 a partial cluster, which
         * took the lock already).
         */
        SUBCLUSTERS,
        /** Write-zeroes with unmap of the whole cluster, one that the writer's write overlaps. */
        WHOLE_CLUSTER,
        /** Discard of the whole cluster. */
        DISCARD;

        void run(Qcow2Image img) throws Exception {
            switch (this) {
                case SUBCLUSTERS -> img.writeZeroes(CS + 10 * SC, 2 * SC, false);
                case WHOLE_CLUSTER -> img.writeZeroes(CS, CS, true);
                case DISCARD -> img.discard(CS, CS);
            }
        }

        /** Cluster 1 after the write of {@code data} into subcluster 5, then this zeroing. */
        byte[] expected(byte[] old, byte[] data) {
            byte[] e = old.clone();
            System.arraycopy(data, 0, e, 5 * SC, SC);
            switch (this) {
                case SUBCLUSTERS -> Arrays.fill(e, 10 * SC, 12 * SC, (byte) 0);
                case WHOLE_CLUSTER, DISCARD -> Arrays.fill(e, (byte) 0);
            }
            return e;
        }
    }

    @ParameterizedTest(name = "{0}, extended L2 {1}")
    @CsvSource({"SUBCLUSTERS, true", "WHOLE_CLUSTER, true", "DISCARD, true", "SUBCLUSTERS, false",
            "WHOLE_CLUSTER, false", "DISCARD, false"})
    void zeroingDuringACopyOnWriteOfTheSameClusterStays(Zeroing zeroing, boolean extendedL2) throws Exception {
        Path image = dir.resolve("race.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(16L * CS).withExtendedL2(extendedL2));
        byte[] old = new byte[CS];
        Arrays.fill(old, (byte) 0x5a);
        byte[] data = new byte[SC];
        Arrays.fill(data, (byte) 0x77);
        GatedStorage gated = new GatedStorage(FileStorage.open(image, false, false));
        try (Qcow2Image img = Qcow2Image.open(gated, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.allocate(SC));
            img.write(CS, ByteBuffer.wrap(old)); // cluster 1: every subcluster allocated
            img.flush();
            Snapshot s = Snapshots.create(img, "s");
            // Cluster 0 is copied out of the snapshot, and with it the L2 table: cluster 1's entry stays shared.
            img.write(0, ByteBuffer.wrap(new byte[] {1}));

            // The copy-on-write into a new cluster writes the whole cluster (every subcluster was allocated).
            GatedStorage.Gate gate = gated.gateWrite((position, length) -> length == CS);
            AtomicReference<Throwable> failed = new AtomicReference<>();
            Thread writer = Thread.ofPlatform().start(() -> {
                try {
                    img.write(CS + 5 * SC, ByteBuffer.wrap(data));
                } catch (Throwable t) {
                    failed.compareAndSet(null, t);
                }
            });
            assertTrue(gate.awaitParked(), "the writer never reached its data write");
            Thread zeroer = Thread.ofPlatform().start(() -> {
                try {
                    zeroing.run(img);
                } catch (Throwable t) {
                    failed.compareAndSet(null, t);
                }
            });
            // Without the lock the zeroing completes here, with it it waits for the writer's cluster lock.
            GatedStorage.awaitDoneOrParked(zeroer);
            gate.release();
            writer.join();
            zeroer.join();
            if (failed.get() != null) {
                throw new AssertionError("a request failed", failed.get());
            }
            byte[] back = new byte[CS];
            img.read(CS, ByteBuffer.wrap(back));
            assertArrayEquals(zeroing.expected(old, data), back, "cluster 1 after the write and the " + zeroing);
            assertTrue(Snapshots.list(img).contains(s));
        }
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        // The snapshot still holds the old data.
        Qemu.img("snapshot", "-a", "s", image.toString());
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            byte[] back = new byte[CS];
            img.read(CS, ByteBuffer.wrap(back));
            assertArrayEquals(old, back);
        }
    }
}
