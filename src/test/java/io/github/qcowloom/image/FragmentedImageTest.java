package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
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
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reads and writes across clusters that lie out of order in the file (allocated in a shuffled order), mixed with
 * zero clusters and clusters of the backing file: each such request is many parts, made side by side (PartTasks),
 * and reads return what was written; a part that fails fails the read. Clusters that sit next to each other in the
 * file are written in place with one host write.
 */
class FragmentedImageTest {
    private static final int CLUSTER = 4096;
    private static final int CLUSTERS = 512;

    @TempDir
    Path dir;

    private final Random random = new Random(11);
    private byte[] expected;

    /** The image opened on {@code watched}, its clusters written in a shuffled order. */
    private Qcow2Image scatteredImage(Storage watched) throws IOException {
        Qcow2Image img = Qcow2Image.open(watched, dir, OpenOptions.readWriteDefaults().withPool(false));
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
                    Arrays.fill(expected, c * CLUSTER, (c + 1) * CLUSTER, (byte) 0);
                }
                default -> { } // the backing file's
            }
        }
        return img;
    }

    /** A new qcow2 image (in memory) over a raw backing file of random bytes. */
    private MemoryStorage newImage() throws IOException {
        byte[] base = new byte[CLUSTER * CLUSTERS];
        random.nextBytes(base);
        Files.write(dir.resolve("base.raw"), base);
        expected = base.clone();
        Path top = dir.resolve("top.qcow2");
        ImageCreator.create(top, CreateOptions.defaults((long) CLUSTER * CLUSTERS).withClusterSize(CLUSTER)
                .withBacking("base.raw", "raw"));
        return new MemoryStorage(Files.readAllBytes(top));
    }

    private void assertReadsBack(Qcow2Image img) throws IOException {
        for (int length : new int[] {1 << 20, 300_000, 2 * CLUSTER + 1}) {
            for (int at = 17; at + length <= expected.length; at += length + 4099) {
                ByteBuffer got = ByteBuffer.allocateDirect(length);
                img.read(at, got);
                byte[] bytes = new byte[length];
                got.flip().get(bytes);
                assertArrayEquals(Arrays.copyOfRange(expected, at, at + length), bytes, length + " bytes at " + at);
            }
        }
    }

    @Test
    void readsOfScatteredClustersSeeWhatWasWrittenAndGoSideBySide() throws Exception {
        MemoryStorage memory = newImage();
        InFlight watched = new InFlight(memory);
        try (Qcow2Image img = scatteredImage(watched)) {
            watched.reads.reset();
            assertReadsBack(img);
            watched.reads.assertSideBySide();

            watched.failAt = watched.lastRead; // a data cluster's place: the L2 tables are cached by now
            IOException e = assertThrows(IOException.class, () -> img.read(0, ByteBuffer.allocate(expected.length)));
            assertEquals("injected read failure", e.getMessage());
        }
    }

    /**
     * Writes over data clusters (in place), zero clusters and the backing file's (new clusters, with their
     * copy-on-write), in ranges of many clusters: side by side, and the image reads back and checks clean.
     */
    @Test
    void writesOfScatteredClustersGoSideBySideAndReadBack() throws Exception {
        MemoryStorage memory = newImage();
        InFlight watched = new InFlight(memory);
        try (Qcow2Image img = scatteredImage(watched)) {
            watched.writes.reset();
            for (int length : new int[] {1 << 20, 300_000, 3 * CLUSTER + 5}) {
                for (int at = 4099; at + length <= expected.length; at += 2 * length + 511) {
                    byte[] data = new byte[length];
                    random.nextBytes(data);
                    img.write(at, ByteBuffer.wrap(data));
                    System.arraycopy(data, 0, expected, at, length);
                }
            }
            watched.writes.assertSideBySide();
            assertReadsBack(img);
        }
        var check = io.github.qcowloom.check.ImageChecker.check(new MemoryStorage(memory.snapshot()), "top.qcow2");
        assertEquals(0, check.corruptions() + check.leaks(), check.messages().toString());
    }

    /** Clusters written in order sit in order in the file: a write over them in place is one host write. */
    @Test
    void aWriteInPlaceOverClustersInARowIsOneHostWrite() throws Exception {
        MemoryStorage memory = newImage();
        InFlight watched = new InFlight(memory);
        try (Qcow2Image img = Qcow2Image.open(watched, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] data = new byte[64 * CLUSTER];
            random.nextBytes(data);
            img.write(0, ByteBuffer.wrap(data)); // new clusters, in a row
            random.nextBytes(data);
            watched.writes.reset();
            img.write(CLUSTER / 2, ByteBuffer.wrap(data, 0, 40 * CLUSTER));
            assertEquals(1, watched.writes.count.get(), "host writes for 40 clusters in place");
            ByteBuffer got = ByteBuffer.allocate(40 * CLUSTER);
            img.read(CLUSTER / 2, got);
            assertArrayEquals(Arrays.copyOf(data, 40 * CLUSTER), got.array());
        }
    }

    /**
     * A resize of a version 2 image over a longer backing file zeroes the new range with writes, holding the
     * metadata lock (an exclusive edit): their parts must not wait for it on other threads. Two clusters, the
     * second partial, were two parts.
     */
    @Test
    void aResizeThatWritesZeroesOverSeveralClustersFinishes() throws Exception {
        byte[] base = new byte[16 * CLUSTER];
        random.nextBytes(base);
        Files.write(dir.resolve("base.raw"), base);
        Path top = dir.resolve("v2.qcow2");
        ImageCreator.create(top, CreateOptions.defaults(10L * CLUSTER).withClusterSize(CLUSTER).withVersion(2)
                .withBacking("base.raw", "raw"));
        MemoryStorage memory = new MemoryStorage(Files.readAllBytes(top));
        Qcow2Image img = Qcow2Image.open(new InFlight(memory), dir, OpenOptions.readWriteDefaults().withPool(false));
        // Not closed if it times out: a resize stuck holding the image's locks would hold up the close too.
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> img.resize(11L * CLUSTER + 512));
        ByteBuffer grown = ByteBuffer.allocate(CLUSTER + 512);
        img.read(10L * CLUSTER, grown);
        assertArrayEquals(new byte[CLUSTER + 512], grown.array());
        img.close();
    }

    /** Requests of one kind in flight at once on the image file. */
    private static final class Gauge {
        final AtomicInteger now = new AtomicInteger();
        final AtomicInteger most = new AtomicInteger();
        final AtomicInteger count = new AtomicInteger();

        void reset() {
            most.set(0);
            count.set(0);
        }

        void enter() {
            count.incrementAndGet();
            most.accumulateAndGet(now.incrementAndGet(), Math::max);
            Thread.yield(); // let the other parts in: memory I/O is over before they start otherwise
        }

        void exit() {
            now.decrementAndGet();
        }

        void assertSideBySide() {
            assertTrue(most.get() > 1, "no two parts of a request were in flight at once");
            assertTrue(most.get() <= PartTasks.MAX_WORKERS, most.get() + " in flight");
        }
    }

    /**
     * The image file as an O_DIRECT one (it waits for a device), counting its reads and writes in flight, and
     * failing reads that cover one place if told to.
     */
    private static final class InFlight extends ForwardingStorage {
        final Gauge reads = new Gauge();
        final Gauge writes = new Gauge();
        volatile long failAt = -1;
        volatile long lastRead = -1;

        InFlight(Storage file) {
            super(file);
        }

        @Override
        public boolean waitsForDevice() {
            return true;
        }

        @Override
        public int read(ByteBuffer dst, long position) throws IOException {
            long fail = failAt;
            if (fail >= position && fail < position + dst.remaining()) {
                throw new IOException("injected read failure");
            }
            lastRead = position;
            reads.enter();
            try {
                return super.read(dst, position);
            } finally {
                reads.exit();
            }
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            writes.enter();
            try {
                super.write(src, position);
            } finally {
                writes.exit();
            }
        }
    }
}
