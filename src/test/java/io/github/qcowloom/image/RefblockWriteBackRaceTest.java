package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.GatedStorage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A flush copies a dirty refblock slice under the metadata lock and writes the copy after releasing it; a new L2
 * table allocated meanwhile writes a newer copy of the same slice (with the table's refcount) and syncs before the
 * L1 entry. The flush's older copy must never land on top of it: the slice would count as clean while the disk
 * said the L2 table's cluster was free (qemu-img check: refcount=0 reference=1).
 */
class RefblockWriteBackRaceTest {
    private static final int CLUSTER = 4096;

    @TempDir
    Path dir;

    @Test
    void aFlushsOlderRefblockCopyNeverLandsOverAnL2AllocationsNewerOne() throws Exception {
        Path image = dir.resolve("race.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(64L << 20).withClusterSize(CLUSTER));
        long refblockSlice = firstRefblock(image);
        GatedStorage storage = new GatedStorage(FileStorage.open(image, false, false));
        byte[] data = new byte[CLUSTER];
        Arrays.fill(data, (byte) 0x5a);
        try (Qcow2Image img = Qcow2Image.open(storage, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            img.write(0, ByteBuffer.wrap(data));
            img.flush();
            // The refblock slice counting the first clusters is dirty again (a new data cluster), as is an L2 slice.
            img.write(CLUSTER, ByteBuffer.wrap(data));

            // A flush copies that slice and parks on its way to the disk, holding no metadata lock.
            GatedStorage.Gate gate = storage.gateWrite((p, length) -> p == refblockSlice);
            Request flush = start("flush", img::flush);
            assertTrue(gate.awaitParked(), "the flush never wrote the refblock slice");

            // A discard where no L2 table exists allocates one (as QEMU's get_cluster_table does): its refcount goes
            // into the same refblock slice, which is written and synced before the table and the L1 entry.
            Request discard = start("discard", () -> img.discard(8L << 20, CLUSTER));
            // Unfixed, the discard runs to its end here. Fixed, it waits for the parked write of the same slice (an
            // older copy that must land first); then the flush is let go either way.
            awaitDoneOrWaiting(discard);
            gate.release();
            flush.done().get(30, TimeUnit.SECONDS);
            discard.done().get(30, TimeUnit.SECONDS);
        }
        CheckResult r = ImageChecker.check(image, "race.qcow2");
        assertEquals(0, r.corruptions(), "a stale refblock copy landed last: " + r.messages());
        assertEquals(0, r.leaks(), r.messages().toString());
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] got = new byte[2 * CLUSTER];
            img.read(0, ByteBuffer.wrap(got));
            assertArrayEquals(data, Arrays.copyOf(got, CLUSTER));
            assertArrayEquals(data, Arrays.copyOfRange(got, CLUSTER, 2 * CLUSTER));
        }
    }

    /** Offset of the first refcount block: reftable entry 0 (the header's refcount_table_offset is at byte 48). */
    private static long firstRefblock(Path image) throws IOException {
        try (FileStorage f = FileStorage.open(image, true, false)) {
            ByteBuffer b = ByteBuffer.allocate(8);
            f.readFully(b, 48);
            long reftable = b.getLong(0);
            f.readFully(b.clear(), reftable);
            return b.getLong(0);
        }
    }

    @FunctionalInterface
    private interface Io {
        void run() throws IOException;
    }

    /** A request running on its own platform thread (whose state the test can watch). */
    private record Request(Thread thread, CompletableFuture<Void> done) {
    }

    private static Request start(String name, Io body) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                body.run();
                done.complete(null);
            } catch (Throwable e) {
                done.completeExceptionally(e);
            }
        }, name);
        t.start();
        return new Request(t, done);
    }

    /** Waits until the request finished, or its thread waits for a lock (the only wait in its path is the slice's). */
    private static void awaitDoneOrWaiting(Request request) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!request.done().isDone()) {
            if (request.thread().getState() == Thread.State.WAITING) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the discard neither finished nor waited");
            }
            Thread.sleep(1);
        }
    }
}
