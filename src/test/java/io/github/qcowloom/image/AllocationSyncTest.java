package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Allocation orders its metadata writes with syncs of the ranges just written, never with the whole file's sync,
 * which would also write back every guest write the page cache holds: only the guest's flush makes one.
 */
class AllocationSyncTest {
    private static final int CLUSTER = 4096;
    /** One L2 table of 4 KiB clusters maps 2 MiB. */
    private static final long L2_SPAN = (CLUSTER / 8L) * CLUSTER;
    /** One refblock of 16-bit refcounts counts 8 MiB of host clusters. */
    private static final long REFBLOCK_SPAN = (CLUSTER / 2L) * CLUSTER;

    @TempDir
    Path dir;

    /** Counts whole-file syncs and records ranged ones. */
    private static final class SyncLog extends ForwardingStorage {
        final AtomicInteger wholeFile = new AtomicInteger();
        final List<long[]> ranges = new CopyOnWriteArrayList<>();

        SyncLog(Storage inner) {
            super(inner);
        }

        @Override
        public void flush() throws IOException {
            super.flush();
            wholeFile.incrementAndGet();
        }

        @Override
        public void flushRange(long position, long length) throws IOException {
            super.flushRange(position, length);
            ranges.add(new long[] {position, length});
        }
    }

    @Test
    void newL2TablesAndRefblocksSyncTheirOwnRangesOnly() throws Exception {
        Path file = dir.resolve("a.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(64L << 20).withClusterSize(CLUSTER));
        MemoryStorage memory = new MemoryStorage(Files.readAllBytes(file));
        SyncLog log = new SyncLog(memory);
        byte[] data = new byte[CLUSTER];
        try (Qcow2Image img = Qcow2Image.open(log, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            // One cluster in each of ten L2 tables' spans; then clusters until the file outgrows the first refblock.
            for (int t = 0; t < 10; t++) {
                data[0] = (byte) (t + 1);
                img.write(t * L2_SPAN, ByteBuffer.wrap(data));
            }
            for (long at = CLUSTER; memory.size() <= REFBLOCK_SPAN + CLUSTER; at += CLUSTER) {
                img.write(at, ByteBuffer.wrap(data));
            }
            assertEquals(0, log.wholeFile.get(), "allocation made a whole-file sync");
            // Each new table: its refcount's slice, the table, its L1 entry; then the second refblock and its entry.
            assertTrue(log.ranges.size() >= 10 * 3 + 2, log.ranges.size() + " ranged syncs");
            for (long[] r : log.ranges) {
                assertTrue(r[1] > 0 && r[1] <= CLUSTER, "a ranged sync of " + r[1] + " bytes at " + r[0]);
            }
            img.flush();
            assertTrue(log.wholeFile.get() > 0, "the guest's flush syncs the whole file");
        }
        var check = ImageChecker.check(new MemoryStorage(memory.snapshot()), "a.qcow2");
        assertEquals(0, check.corruptions() + check.leaks(), check.messages().toString());
    }
}
