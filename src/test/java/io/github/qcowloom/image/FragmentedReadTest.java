package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reads across clusters that lie out of order in the file (allocated in a shuffled order), mixed with zero clusters
 * and clusters of the backing file: each such read is many parts, read side by side (PartTasks), and returns what
 * was written; a part that fails fails the read.
 */
class FragmentedReadTest {
    private static final int CLUSTER = 4096;
    private static final int CLUSTERS = 512;

    @TempDir
    Path dir;

    @Test
    void readsOfScatteredClustersSeeWhatWasWrittenAndGoSideBySide() throws Exception {
        Random random = new Random(11);
        byte[] base = new byte[CLUSTER * CLUSTERS];
        random.nextBytes(base);
        Path backing = Files.write(dir.resolve("base.raw"), base);
        Path top = dir.resolve("top.qcow2");
        ImageCreator.create(top, CreateOptions.defaults(base.length).withClusterSize(CLUSTER)
                .withBacking(backing.getFileName().toString(), "raw"));
        byte[] expected = base.clone();
        MemoryStorage memory = new MemoryStorage(Files.readAllBytes(top));
        ReadsInFlight watched = new ReadsInFlight(memory);
        try (Qcow2Image img = Qcow2Image.open(watched, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            List<Integer> order = new ArrayList<>();
            for (int c = 0; c < CLUSTERS; c++) {
                order.add(c);
            }
            Collections.shuffle(order, random);
            for (int c : order) {
                switch (c % 4) {
                    case 0, 1 -> { // data, at a place in the file unrelated to its guest offset
                        byte[] data = new byte[CLUSTER];
                        random.nextBytes(data);
                        img.write((long) c * CLUSTER, ByteBuffer.wrap(data));
                        System.arraycopy(data, 0, expected, c * CLUSTER, CLUSTER);
                    }
                    case 2 -> { // zeroes over the backing file's bytes
                        img.writeZeroes((long) c * CLUSTER, CLUSTER, false);
                        java.util.Arrays.fill(expected, c * CLUSTER, (c + 1) * CLUSTER, (byte) 0);
                    }
                    default -> { } // the backing file's
                }
            }
            for (int length : new int[] {1 << 20, 300_000, 2 * CLUSTER + 1}) {
                for (int at = 17; at + length <= expected.length; at += length + 4099) {
                    ByteBuffer got = ByteBuffer.allocateDirect(length);
                    img.read(at, got);
                    byte[] bytes = new byte[length];
                    got.flip().get(bytes);
                    assertArrayEquals(java.util.Arrays.copyOfRange(expected, at, at + length), bytes,
                            length + " bytes at " + at);
                }
            }
            assertTrue(watched.most.get() > 1, "no two parts of a read were in flight at once");
            assertTrue(watched.most.get() <= PartTasks.MAX_WORKERS, watched.most.get() + " reads in flight");

            watched.failAt = watched.lastRead; // a data cluster's place: the L2 tables are cached by now
            IOException e = assertThrows(IOException.class, () -> img.read(0, ByteBuffer.allocate(base.length)));
            assertEquals("injected read failure", e.getMessage());
        }
    }

    /** The image file, counting its reads in flight at once, and failing reads that cover one place if told to. */
    private static final class ReadsInFlight extends ForwardingStorage {
        final AtomicInteger inFlight = new AtomicInteger();
        final AtomicInteger most = new AtomicInteger();
        volatile long failAt = -1;
        volatile long lastRead = -1;

        ReadsInFlight(Storage file) {
            super(file);
        }

        @Override
        public boolean waitsForDevice() {
            return true; // as an O_DIRECT file: the parts go side by side
        }

        @Override
        public int read(ByteBuffer dst, long position) throws IOException {
            long fail = failAt;
            if (fail >= position && fail < position + dst.remaining()) {
                throw new IOException("injected read failure");
            }
            lastRead = position;
            most.accumulateAndGet(inFlight.incrementAndGet(), Math::max);
            try {
                Thread.yield(); // let the other parts in: memory reads are over before they start otherwise
                return super.read(dst, position);
            } finally {
                inFlight.decrementAndGet();
            }
        }
    }
}
