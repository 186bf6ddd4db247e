package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Writes, write-zeroes and discards on extended-L2 images (32 subclusters per cluster), checked against the real
 * qemu-img and qemu-io 7.2: the same requests leave the same subcluster bitmaps as qemu-io leaves, random request
 * sequences leave images qemu-img finds clean and equal to a byte-array model, and we and qemu-io can take turns.
 */
class ExtendedL2WriteInteropTest {
    private static final int CLUSTER = 65536;
    private static final int SUB = CLUSTER / 32;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** A base image of {@code size} bytes written all over with a pattern, so every backing read is data. */
    private Path fullBacking(long size) {
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), Long.toString(size));
        Qemu.io(base, "write -P 0x5a 0 " + size);
        return base;
    }

    private Path create(String name, int clusterSize, long size, boolean backing) {
        Path image = dir.resolve(name);
        List<String> args = new ArrayList<>(List.of("create", "-q", "-f", "qcow2", "-o",
                "cluster_size=" + clusterSize + ",extended_l2=on"));
        if (backing) {
            args.addAll(List.of("-b", "base.qcow2", "-F", "qcow2"));
        }
        args.addAll(List.of(image.toString(), Long.toString(size)));
        Qemu.img(args.toArray(String[]::new));
        return image;
    }

    static Stream<Arguments> scenarios() {
        int c = CLUSTER;
        List<Arguments> out = new ArrayList<>();
        for (boolean backing : new boolean[] {false, true}) {
            out.add(Arguments.of("partial writes into unallocated clusters", backing, List.of(
                    GuestOp.write(3000, 5000, 1), GuestOp.write(c + 4, 100, 2), GuestOp.write(2L * c, SUB, 3),
                    GuestOp.write(3L * c - 700, 2L * c + 1500, 4), GuestOp.write(8L * c - 1, 2, 5))));
            out.add(Arguments.of("writes into owned clusters with unallocated subclusters", backing, List.of(
                    GuestOp.write(3000, 5000, 1), GuestOp.write(20000, 30000, 2), GuestOp.write(1000, 100, 3),
                    GuestOp.write(6000, 10, 4), GuestOp.write(c - 10, 20, 5), GuestOp.write(c + 9000, c, 6))));
            out.add(Arguments.of("write-zeroes in subclusters and clusters", backing, List.of(
                    GuestOp.write(0, c, 1), GuestOp.zero(3000, 5000, false), GuestOp.zero(10240, 4096, false),
                    GuestOp.zero(c, 4096, true), GuestOp.zero(2L * c, 1000, false), GuestOp.zero(3L * c, c, false),
                    GuestOp.write(4L * c, 2L * c, 7), GuestOp.zero(4L * c, c, true),
                    GuestOp.zero(5L * c + 3 * SUB, 3L * c, false), GuestOp.write(4000, 100, 8),
                    GuestOp.write(2L * c + 100, 50, 9))));
            out.add(Arguments.of("discards", backing, List.of(
                    GuestOp.write(0, 4L * c, 1), GuestOp.discard(c, 2L * c), GuestOp.discard(3L * c + 512, c),
                    GuestOp.write(c + 3000, 100, 2), GuestOp.discard(5L * c, c))));
        }
        return out.stream();
    }

    /** The same requests through qemu-io and through us leave the same L2 entries and bitmaps, and guest data. */
    @ParameterizedTest(name = "{0}, backing {1}")
    @MethodSource("scenarios")
    void subclusterBitmapsEqualQemus(String scenario, boolean backing, List<GuestOp> ops) throws IOException {
        long size = 16L * CLUSTER;
        if (backing) {
            fullBacking(size);
        }
        Path theirs = create("qemu.qcow2", CLUSTER, size, backing);
        Path ours = create("ours.qcow2", CLUSTER, size, backing);
        Qemu.io(theirs, ops.stream().map(GuestOp::qemuIo).toArray(String[]::new));
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults())) {
            for (GuestOp op : ops) {
                op.applyTo(img);
            }
        }
        assertEquals(L2Dump.describe(theirs), L2Dump.describe(ours), scenario);
        Qemu.img("compare", theirs.toString(), ours.toString());
        assertClean(ours);
    }

    /**
     * A write into an allocated cluster the image does not own alone (COPIED clear, as a snapshot leaves it) copies
     * it to a new cluster: from its first to its last allocated subcluster and the written ones, as qemu-io does,
     * and the old cluster is freed.
     */
    @Test
    void copyOfASharedClusterCoversItsAllocatedSubclusters() throws IOException {
        long size = 4L * CLUSTER;
        fullBacking(size);
        List<GuestOp> setup = List.of(GuestOp.write(3L * SUB, 3L * SUB, 1), GuestOp.write(20L * SUB, 3L * SUB, 2),
                GuestOp.zero(10L * SUB, SUB, false), GuestOp.write(CLUSTER + 5L * SUB, 100, 3));
        List<GuestOp> writes = List.of(GuestOp.write(12L * SUB + 100, 300, 4), GuestOp.write(CLUSTER + 31L * SUB, 9, 5));
        Path theirs = create("qemu.qcow2", CLUSTER, size, true);
        Path ours = create("ours.qcow2", CLUSTER, size, true);
        for (Path image : List.of(theirs, ours)) {
            Qemu.io(image, setup.stream().map(GuestOp::qemuIo).toArray(String[]::new));
            for (int c = 0; c < 2; c++) {
                long at = ImagePoker.l2EntryOffset(image, c);
                ImagePoker.putLong(image, at, ImagePoker.getLong(image, at) & ~L2Entry.COPIED);
            }
        }
        Qemu.io(theirs, writes.stream().map(GuestOp::qemuIo).toArray(String[]::new));
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults())) {
            for (GuestOp op : writes) {
                op.applyTo(img);
            }
        }
        List<String> expected = L2Dump.describe(theirs);
        assertEquals(expected, L2Dump.describe(ours));
        assertTrue(expected.get(0).contains("alloc 007ffff8"), expected.toString());
        Qemu.img("compare", theirs.toString(), ours.toString());
        assertClean(ours);
        assertClean(theirs);
    }

    static Stream<Arguments> layouts() {
        List<Arguments> out = new ArrayList<>();
        for (int cs : new int[] {16384, 65536, 2 << 20}) {
            out.add(Arguments.of(cs, false));
            out.add(Arguments.of(cs, true));
        }
        return out.stream();
    }

    /** Random unaligned requests by us: qemu-img check is clean and the disk equals the model, through both. */
    @ParameterizedTest(name = "cluster {0}, backing {1}")
    @MethodSource("layouts")
    void randomRequestsMatchTheModel(int clusterSize, boolean backing) throws IOException {
        long size = (4L << 20) + 1536;
        byte[] model = new byte[(int) size];
        if (backing) {
            // Shorter than the overlay, with data in parts only: reads past its end and through holes are zero.
            Path base = dir.resolve("base.qcow2");
            Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "3M");
            Qemu.io(base, "write -P 0x41 0 1M", "write -P 0x42 1536k 1000k");
            model = Arrays.copyOf(Qemu.toRaw(base, dir), (int) size);
        }
        Path image = create("r.qcow2", clusterSize, size, backing);
        List<GuestOp> ops = GuestOp.random(clusterSize * 31L + (backing ? 1 : 0), 80, size, clusterSize);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            for (int i = 0; i < ops.size(); i++) {
                ops.get(i).applyTo(img);
                ops.get(i).applyTo(model, clusterSize);
                if (i % 16 == 15) {
                    img.flush();
                }
            }
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)), ops.toString());
        }
        assertClean(image);
        assertEqualsModel(image, model);
    }

    /** We and qemu-io take turns on one image; after every turn it is clean and equals the model. */
    @Test
    void alternatingWithQemuIoStaysConsistent() throws IOException {
        long size = 3L << 20;
        fullBacking(2L << 20);
        Path image = create("alt.qcow2", CLUSTER, size, true);
        byte[] model = Arrays.copyOf(Qemu.toRaw(dir.resolve("base.qcow2"), dir), (int) size);
        for (int round = 0; round < 3; round++) {
            try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
                for (GuestOp op : GuestOp.random(round, 25, size, CLUSTER)) {
                    op.applyTo(img);
                    op.applyTo(model, CLUSTER);
                }
            }
            List<GuestOp> theirs = GuestOp.random(100 + round, 15, size, CLUSTER);
            Qemu.io(image, theirs.stream().map(GuestOp::qemuIo).toArray(String[]::new));
            theirs.forEach(op -> op.applyTo(model, CLUSTER));
            assertClean(image);
            assertEqualsModel(image, model);
        }
    }

    /**
     * Writers into different subclusters of the same clusters, all at once: the allocating ones serialise on the
     * cluster, the ones filling subclusters of an owned cluster update its bitmap under the metadata lock, and no
     * write's copy-on-write covers another's data.
     */
    @Test
    void writersInDifferentSubclustersOfOneClusterAgree() throws Exception {
        long size = 8L * CLUSTER;
        fullBacking(size);
        Path image = create("vt.qcow2", CLUSTER, size, true);
        byte[] model = Qemu.toRaw(dir.resolve("base.qcow2"), dir);
        List<GuestOp> ops = new ArrayList<>();
        for (int c = 0; c < 8; c++) {
            for (int s = 0; s < 32; s++) {
                long at = (long) c * CLUSTER + (long) s * SUB;
                // Partial subclusters (copy-on-write at both edges), whole ones, and zeroes in every fourth.
                ops.add(switch (s % 4) {
                    case 0 -> GuestOp.write(at + 100, SUB - 300, 1 + s);
                    case 1 -> GuestOp.write(at, SUB, 1 + s);
                    case 2 -> GuestOp.write(at + 7, 100, 1 + s);
                    default -> GuestOp.zero(at, SUB, s % 8 == 3);
                });
            }
        }
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults());
                ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (GuestOp op : ops) {
                done.add(threads.submit(() -> {
                    op.applyTo(img);
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        }
        ops.forEach(op -> op.applyTo(model, CLUSTER));
        assertClean(image);
        assertEqualsModel(image, model);
    }

    /**
     * Readers of clusters whose entry and bitmap writers keep replacing (allocation, in-place fills, discard,
     * write-zeroes) never see one word from before a change with the other from after it, which would read as a
     * corrupt entry; ClusterMapperTest has the tight loop that shows the race.
     */
    @Test
    void readersNeverSeeHalfChangedEntries() throws Exception {
        Path image = create("race.qcow2", CLUSTER, 4L * CLUSTER, false);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults());
                ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            AtomicBoolean stop = new AtomicBoolean();
            List<Future<?>> writers = new ArrayList<>();
            for (int w = 0; w < 4; w++) {
                int id = w;
                writers.add(threads.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(id);
                    for (int i = 0; i < 400; i++) {
                        long cluster = rnd.nextInt(2);
                        long at = cluster * CLUSTER + (long) rnd.nextInt(32) * SUB;
                        switch (rnd.nextInt(6)) {
                            case 0 -> img.discard(cluster * CLUSTER, CLUSTER);
                            case 1 -> img.writeZeroes(cluster * CLUSTER, CLUSTER, true);
                            case 2 -> img.writeZeroes(at, SUB, false);
                            default -> GuestOp.write(at, SUB, 1 + rnd.nextInt(255)).applyTo(img);
                        }
                    }
                    return null;
                }));
            }
            List<Future<?>> readers = new ArrayList<>();
            for (int r = 0; r < 4; r++) {
                readers.add(threads.submit(() -> {
                    ByteBuffer buf = ByteBuffer.allocate(2 * CLUSTER);
                    while (!stop.get()) {
                        // A torn entry would read as corrupt (MetadataCorruptionException) and mark the image.
                        img.read(0, buf.clear());
                        // Virtual threads are not time-sliced: a reader whose reads never park (zero clusters,
                        // page-cache hits completed inline) keeps its carrier, and a writer resumed by an
                        // io_uring completion (submitted to the scheduler from outside) waits behind such
                        // readers for as long as they run; Thread.yield does not help, it requeues locally.
                        LockSupport.parkNanos(10_000);
                    }
                    return null;
                }));
            }
            try {
                for (Future<?> f : writers) {
                    f.get();
                }
            } finally {
                stop.set(true);
            }
            for (Future<?> f : readers) {
                f.get();
            }
        }
        assertClean(image);
    }

    /** A bitmap that marks a subcluster both allocated and zero is corrupt: the write fails, typed, as in QEMU. */
    @Test
    void writeIntoAnInvalidBitmapIsRefused() throws IOException {
        Path image = create("bad.qcow2", CLUSTER, 1 << 20, false);
        Qemu.io(image, "write -P 1 0 64k");
        long bitmapAt = ImagePoker.l2EntryOffset(image, 0) + 8;
        ImagePoker.putLong(image, bitmapAt, L2Entry.BITMAP_ALLOC_MASK | L2Entry.zeroRange(3, 4));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            MetadataCorruptionException e = assertThrows(MetadataCorruptionException.class,
                    () -> img.write(100, ByteBuffer.allocate(10)));
            assertTrue(e.getMessage().contains("Invalid cluster entry"), e.getMessage());
        }
    }

    private void assertClean(Path image) {
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
    }

    private void assertEqualsModel(Path image, byte[] model) throws IOException {
        Path raw = dir.resolve("model.raw");
        Files.write(raw, model);
        Qemu.img("compare", "-f", "qcow2", "-F", "raw", image.toString(), raw.toString());
    }
}
