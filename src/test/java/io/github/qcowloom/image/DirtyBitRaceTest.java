package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.alloc.NewCluster;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.crashkit.CrashSimStorage;
import io.github.qcowloom.crashkit.CrashState;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.snapshot.Snapshots;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import io.github.qcowloom.testing.GatedStorage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The header's dirty bit against the allocations it covers, and the header bits' transitions against one another.
 * Clusters the pool holds are leaks on a crash, and with lazy refcounts so is every refcount not yet written: the
 * header must be dirty on disk whenever a crash could leave either. These tests force the interleavings in which a
 * clean could slip past an allocation, or undo a corrupt bit.
 */
class DirtyBitRaceTest {
    private static final int CLUSTER = 4096;
    private static final long WAIT_SECONDS = 10;

    @TempDir
    Path dir;

    /**
     * The pool's first refill announces its allocation and is parked there; a snapshot delete (a table edit,
     * which flushes everything and marks the image clean at its end) runs meanwhile; then the refill goes on, a
     * write takes a pooled cluster and is flushed. With lazy refcounts the write's refcount never reached the disk
     * (refcount 0, one reference); without, the pool's other clusters are leaked there. Either way the header must
     * be dirty in every crash state that has them.
     */
    @ParameterizedTest(name = "lazy refcounts {0}")
    @ValueSource(booleans = {true, false})
    void aRefillThatWaitedOutATableEditKeepsTheImageDirty(boolean lazy) throws Exception {
        byte[] prepared = imageWithSnapshot(lazy);
        CrashSimStorage sim = new CrashSimStorage(prepared);
        GatedStorage parking = new GatedStorage(sim);
        GatedStorage.Gate refill = parking.gateEvent(StorageEvent.CLUSTER_ALLOC,
                t -> t.getName().equals("qcow2-cluster-pool"));
        // Thresholds 2..4: the refill is one batch of 3 clusters, and the write's take leaves 2, which asks for none.
        OpenOptions options = OpenOptions.readWriteDefaults();
        options = options.withTuning(options.tuning().withPool(true).withPoolThresholds(2, 4, 4));
        Qcow2Image img = Qcow2Image.open(parking, null, options);
        try {
            assertTrue(refill.awaitParked(), "the pool never refilled");
            Snapshots.delete(img, Snapshots.findByName(Snapshots.list(img), "s1").orElseThrow());
            refill.release();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_SECONDS);
            // The whole refill (3 clusters), so that the write's take asks for no other refill.
            while (img.clusterPool().size() < 3) {
                assertTrue(System.nanoTime() < deadline, "the pool never filled");
                Thread.sleep(1);
            }
            // A new guest cluster in the table the delete left COPIED: its host cluster comes from the pool.
            img.write(16L * CLUSTER, ByteBuffer.wrap(filled(CLUSTER, (byte) 7)));
            img.flush();
        } finally {
            refill.release();
            img.close();
        }
        assertNothingHiddenBehindACleanHeader(sim, lazy);
    }

    /**
     * Clusters a refill has allocated but not yet put into the pool (or a trim has taken out but not yet given
     * back) are leaks on a crash as much as pooled ones: a flush-and-clean in that window must leave the image
     * dirty. Drives the cluster supply as the pool's allocator thread would, with the pool itself off.
     */
    @Test
    void clustersOnTheirWayIntoThePoolKeepTheImageDirty() throws Exception {
        MemoryStorage file = new MemoryStorage(freshImage(false));
        try (Qcow2Image img = Qcow2Image.open(file, null, OpenOptions.readWriteDefaults().withPool(false))) {
            ClusterSupply supply = img.metadataWriter().supply();
            FlushOrder flushes = img.metadataWriter().flushOrder();
            List<NewCluster> refill = supply.allocate(3);
            flushes.flushUntilClean();
            assertTrue(ImageMetadata.readHeader(file).dirty(),
                    "the image was marked clean while 3 allocated clusters were on their way into the pool");
            supply.release(refill);
            flushes.flushUntilClean();
            assertFalse(ImageMetadata.readHeader(file).dirty(), "given back and flushed: nothing can leak");
        }
    }

    /**
     * A write that took an allocated cluster (here a batch's reservation) and is writing its data has neither a
     * counted unreferenced cluster nor a pending entry, but a crash leaks its cluster all the same: a flush-and-clean
     * must wait until the write has linked the cluster. The write is parked in its data write; the clean must then
     * wait (for the image lock), not finish.
     */
    @Test
    void aCleanWaitsForAWriteBetweenTakingAClusterAndLinkingIt() throws Exception {
        MemoryStorage setup = new MemoryStorage(freshImage(false));
        try (Qcow2Image img = Qcow2Image.open(setup, null, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(filled(CLUSTER, (byte) 1))); // the L2 table the write below needs
        }
        CrashSimStorage sim = new CrashSimStorage(setup.snapshot());
        GatedStorage parking = new GatedStorage(sim);
        GatedStorage.Gate writing = parking.gateWrite(
                (position, length) -> Thread.currentThread().getName().equals("parked-writer"));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Qcow2Image img = Qcow2Image.open(parking, null, OpenOptions.readWriteDefaults().withPool(false));
        try {
            img.reserve(1);
            Thread writer = Thread.ofPlatform().name("parked-writer")
                    .start(() -> run(() -> img.write(CLUSTER, ByteBuffer.wrap(filled(CLUSTER, (byte) 2))), failure));
            assertTrue(writing.awaitParked(), "the write never wrote");
            FlushOrder flushes = img.metadataWriter().flushOrder();
            Thread cleaner = Thread.ofPlatform().start(() -> run(flushes::flushUntilClean, failure));
            GatedStorage.awaitDoneOrParked(cleaner);
            assertTrue(cleaner.isAlive(), "the clean finished while a write held a cluster it had not linked");
            writing.release();
            writer.join();
            cleaner.join();
            assertEquals(null, failure.get());
        } finally {
            writing.release();
            img.close();
        }
        assertNothingHiddenBehindACleanHeader(sim, false);
    }

    /**
     * The corrupt bit must survive a clean that computed its new value before the corrupt bit was set: each
     * transition is a read-modify-write of the header bits under one lock.
     */
    @Test
    void aConcurrentCleanDoesNotUndoTheCorruptBit() throws Exception {
        MemoryStorage file = new MemoryStorage(new byte[CLUSTER]);
        GatedStorage gated = new GatedStorage(file);
        // The only header write that sets the corrupt bit is markCorrupt's.
        GatedStorage.Gate writing = gated.gateWrite((position, length) -> position == 72);
        HeaderBits bits = new HeaderBits(gated, 3, Features.INCOMPAT_DIRTY);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread corrupt = Thread.ofPlatform().start(() -> run(bits::markCorrupt, failure));
        assertTrue(writing.awaitParked(), "markCorrupt never wrote");
        // markCorrupt holds the bits' lock, parked in its header write; markClean now waits for that lock.
        Thread clean = Thread.ofPlatform().start(() -> run(bits::markClean, failure));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_SECONDS);
        while (clean.getState() != Thread.State.WAITING) {
            assertTrue(clean.isAlive() && System.nanoTime() < deadline, "markClean did not wait for the lock");
            Thread.onSpinWait();
        }
        writing.release();
        corrupt.join();
        clean.join();
        assertEquals(null, failure.get());
        ByteBuffer onDisk = ByteBuffer.allocate(8);
        file.readFully(onDisk, 72);
        assertEquals(Features.INCOMPAT_CORRUPT, onDisk.getLong(0), "incompatible features on disk");
    }

    @FunctionalInterface
    private interface Step {
        void run() throws IOException;
    }

    private static void run(Step t, AtomicReference<Throwable> failure) {
        try {
            t.run();
        } catch (Throwable e) {
            failure.compareAndSet(null, e);
        }
    }

    /**
     * Every crash state must be either dirty (the next read-write open recounts) or clean and consistent: no
     * refcount below its references and no leak behind a clean header. Without lazy refcounts a refcount below its
     * references is wrong even in a dirty image. At least one state must have something to repair, or the
     * workload proved nothing.
     */
    private static void assertNothingHiddenBehindACleanHeader(CrashSimStorage sim, boolean lazy) throws IOException {
        List<String> failures = new ArrayList<>();
        int states = 0;
        int damaged = 0;
        for (CrashState s : (Iterable<CrashState>) sim.crashStates()::iterator) {
            states++;
            Header header = ImageMetadata.readHeader(MemoryStorage.readOnlyCopy(s.image()));
            CheckResult r = ImageChecker.check(MemoryStorage.readOnlyCopy(s.image()), "crash");
            if (r.corruptions() > 0 || r.leaks() > 0) {
                damaged++;
            }
            if (r.checkErrors() > 0 || (!header.dirty() && (r.corruptions() > 0 || r.leaks() > 0))) {
                failures.add(s + ": dirty " + header.dirty() + ", " + r.corruptions() + " corruptions, " + r.leaks()
                        + " leaks: " + r.messages());
            }
        }
        if (!failures.isEmpty()) {
            fail(failures.size() + " of " + states + " crash states hide damage, first: " + failures.get(0));
        }
        assertTrue(damaged > 0, "no crash state had anything to repair in " + states);
    }

    /** A v3 image (4 KiB clusters) with data in guest clusters 0 and 1 and a snapshot s1 sharing them; clean. */
    private byte[] imageWithSnapshot(boolean lazy) throws IOException {
        MemoryStorage file = new MemoryStorage(freshImage(lazy));
        try (Qcow2Image img = Qcow2Image.open(file, null, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(filled(2 * CLUSTER, (byte) 1)));
            Snapshots.create(img, "s1");
        }
        return file.snapshot();
    }

    private byte[] freshImage(boolean lazy) throws IOException {
        Path file = dir.resolve(lazy ? "lazy.qcow2" : "plain.qcow2");
        Files.deleteIfExists(file);
        ImageCreator.create(file, CreateOptions.defaults(1 << 20).withClusterSize(CLUSTER).withLazyRefcounts(lazy));
        return Files.readAllBytes(file);
    }

    private static byte[] filled(int length, byte value) {
        byte[] b = new byte[length];
        Arrays.fill(b, value);
        return b;
    }
}
