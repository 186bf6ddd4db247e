package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.compress.ClusterCodec;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.testing.Images;
import io.github.qcowloom.testing.MixedData;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Qcow2Image.writeCompressed against qemu-io's write -c: what it accepts, refuses and stores, checked by qemu-img. */
class CompressedWriteTest {
    private static final int CS = 65536;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** A cluster of text (it compresses to about a third), different for every seed. */
    static byte[] textCluster(long seed) {
        // Cluster kinds are drawn per index; search for a TEXT cluster of this seed.
        for (int i = 0; ; i++) {
            if (MixedData.kind(seed, i) == MixedData.Kind.TEXT) {
                byte[] all = MixedData.generate(seed, CS, (i + 1) * CS);
                return Arrays.copyOfRange(all, i * CS, (i + 1) * CS);
            }
        }
    }

    private static void assertQemuClean(Path image) {
        String check = Qemu.img("check", "--output=json", image.toString());
        assertFalse(check.contains("\"corruptions\""), check);
        assertFalse(check.contains("\"leaks\""), check);
    }

    /**
     * The same cluster states in two copies of one image; write -c into each state through qemu-io and through us:
     * both refuse a cluster with a host offset (normal, compressed, preallocated zero) and both take unallocated and
     * plain zero clusters. Incompressible data goes in as a normal write either way, even over allocated clusters.
     */
    @Test
    void refusesAndAcceptsWhatQemuDoes() throws IOException {
        Path ours = dir.resolve("ours.qcow2");
        ImageCreator.create(ours, CreateOptions.defaults(8L * CS));
        byte[] random = new byte[CS];
        new SplittableRandom(1).nextBytes(random);
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults())) {
            img.write(1L * CS, ByteBuffer.wrap(random)); // 1: normal
            img.writeCompressed(2L * CS, ByteBuffer.wrap(textCluster(2))); // 2: compressed
            img.write(3L * CS, ByteBuffer.wrap(random)); // 3: preallocated zero
            img.writeZeroes(3L * CS, CS, false);
            img.write(4L * CS, ByteBuffer.wrap(random)); // 4: plain zero
            img.discard(4L * CS, CS);
            img.write(5L * CS, ByteBuffer.wrap(random)); // 5: normal, gets incompressible data
        }
        Path theirs = dir.resolve("theirs.qcow2");
        Files.copy(ours, theirs, StandardCopyOption.REPLACE_EXISTING);
        try (OnDiskImage d = OnDiskImage.open(ours)) {
            assertEquals(ClusterType.UNALLOCATED, L2Entry.type(d.l2Entry(0), false, false));
            assertEquals(ClusterType.NORMAL, L2Entry.type(d.l2Entry(1), false, false));
            assertEquals(ClusterType.COMPRESSED, L2Entry.type(d.l2Entry(2), false, false));
            assertEquals(ClusterType.ZERO_ALLOC, L2Entry.type(d.l2Entry(3), false, false));
            assertEquals(ClusterType.ZERO_PLAIN, L2Entry.type(d.l2Entry(4), false, false));
        }

        Path pattern = dir.resolve("text.bin");
        Files.write(pattern, textCluster(7));
        Path noise = dir.resolve("random.bin");
        byte[] otherRandom = new byte[CS];
        new SplittableRandom(2).nextBytes(otherRandom);
        Files.write(noise, otherRandom);
        try (Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults())) {
            for (int c = 0; c < 5; c++) {
                String out = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c",
                        "write -c -s " + pattern + " " + c * CS + " " + CS, theirs.toString())).stdout();
                ByteBuffer data = ByteBuffer.wrap(textCluster(7));
                long offset = (long) c * CS;
                if (c == 0 || c == 4) {
                    assertTrue(out.contains("wrote " + CS), "cluster " + c + ": " + out);
                    img.writeCompressed(offset, data);
                } else {
                    assertTrue(out.contains("write failed: Input/output error"), "cluster " + c + ": " + out);
                    assertThrows(ImageException.class, () -> img.writeCompressed(offset, data), "cluster " + c);
                }
            }
            String out = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c",
                    "write -c -s " + noise + " " + 5 * CS + " " + CS, theirs.toString())).stdout();
            assertTrue(out.contains("wrote " + CS), out);
            img.writeCompressed(5L * CS, ByteBuffer.wrap(otherRandom));
        }
        assertQemuClean(ours);
        assertQemuClean(theirs);
        assertTrue(Qemu.img("compare", ours.toString(), theirs.toString()).contains("Images are identical"));
        try (OnDiskImage d = OnDiskImage.open(ours); OnDiskImage q = OnDiskImage.open(theirs)) {
            for (int c = 0; c < 6; c++) {
                assertEquals(L2Entry.type(q.l2Entry(c), false, false), L2Entry.type(d.l2Entry(c), false, false),
                        "type of cluster " + c);
            }
        }
    }

    /** QEMU's EINVAL cases, and the disk's partial last cluster, which is padded with zeroes. */
    @Test
    void wholeClustersOnlyExceptAtTheEnd() throws IOException {
        Path image = dir.resolve("end.qcow2");
        long size = 3L * CS + 1536;
        ImageCreator.create(image, CreateOptions.defaults(size));
        byte[] tail = new byte[1536];
        Arrays.fill(tail, (byte) 0x5a);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            assertThrows(OutOfRangeException.class, () -> img.writeCompressed(4096, ByteBuffer.allocate(CS)));
            assertThrows(OutOfRangeException.class, () -> img.writeCompressed(CS, ByteBuffer.allocate(4096)));
            assertThrows(OutOfRangeException.class, () -> img.writeCompressed(3L * CS, ByteBuffer.allocate(512)));
            assertThrows(OutOfRangeException.class, () -> img.writeCompressed(3L * CS, ByteBuffer.allocate(CS)));
            img.writeCompressed(3L * CS, ByteBuffer.wrap(tail));
            img.writeCompressed(0, ByteBuffer.wrap(textCluster(3)));
            assertEquals(-1, Images.firstDifference(tail, read(img, 3L * CS, tail.length)));
        }
        String io = Qemu.exec(List.of("qemu-io", "-f", "qcow2", "-c", "write -c 4096 64k", image.toString()))
                .stdout();
        assertTrue(io.contains("Invalid argument"), io);
        Qemu.io(image, "read -P 0x5a " + 3 * CS + " 1536");
        assertQemuClean(image);
        try (OnDiskImage d = OnDiskImage.open(image)) {
            assertEquals(ClusterType.COMPRESSED, L2Entry.type(d.l2Entry(3), false, false));
        }
    }

    /**
     * Consecutive compressed clusters are packed to the byte, a cluster that does not fit runs on into the next
     * host cluster, and each host cluster's refcount is the number of compressed clusters that touch it.
     */
    @Test
    void packsBackToBackAndCountsEveryUser() throws IOException {
        Path image = dir.resolve("pack.qcow2");
        int clusters = 24;
        ImageCreator.create(image, CreateOptions.defaults((long) clusters * CS));
        ClusterCodec codec = ClusterCodec.forType(0);
        List<Integer> sizes = new ArrayList<>();
        // No pool: its refill may take the host cluster a compressed cluster would run on into, and the packing
        // then rightly starts afresh elsewhere (as QEMU's qcow2_alloc_bytes does), which this test does not model.
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            for (int c = 0; c < clusters; c++) {
                byte[] data = textCluster(100 + c);
                sizes.add(codec.compress(ByteBuffer.wrap(data)).length);
                img.writeCompressed((long) c * CS, ByteBuffer.wrap(data));
            }
        }
        Map<Long, Integer> users = new HashMap<>();
        boolean ranOn = false;
        try (OnDiskImage d = OnDiskImage.open(image)) {
            long expectedOffset = -1;
            for (int c = 0; c < clusters; c++) {
                CompressedDescriptor desc = CompressedDescriptor.decode(d.l2Entry(c), 16);
                long entry = d.l2Entry(c);
                assertEquals(CompressedDescriptor.encode(desc.hostOffset(), sizes.get(c), 16), entry,
                        "the sector count of cluster " + c + " is QEMU's nb_csectors");
                if (expectedOffset >= 0) {
                    assertEquals(expectedOffset, desc.hostOffset(), "cluster " + c + " follows the one before");
                }
                long end = desc.hostOffset() + sizes.get(c);
                expectedOffset = end;
                ranOn |= desc.firstHostCluster(16) != (end - 1) >>> 16;
                for (long h = desc.firstHostCluster(16); h <= (end - 1) >>> 16; h++) {
                    users.merge(h, 1, Integer::sum);
                }
            }
            for (Map.Entry<Long, Integer> u : users.entrySet()) {
                assertEquals((long) u.getValue(), d.refcount(u.getKey()), "refcount of host cluster " + u.getKey());
            }
        }
        assertTrue(ranOn, "some compressed cluster runs on into the next host cluster");
        assertQemuClean(image);
        byte[] theirs = Qemu.toRaw(image, dir);
        for (int c = 0; c < clusters; c++) {
            assertEquals(-1, Images.firstDifference(textCluster(100 + c),
                    Arrays.copyOfRange(theirs, c * CS, (c + 1) * CS)), "qemu-img reads cluster " + c);
        }
    }

    /** With 1-bit refcounts a host cluster can count one user only: nothing is shared. */
    @Test
    void oneBitRefcountsPackNothing() throws IOException {
        Path image = dir.resolve("rc1.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(8L * CS).withRefcountBits(1));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            for (int c = 0; c < 8; c++) {
                img.writeCompressed((long) c * CS, ByteBuffer.wrap(textCluster(c)));
            }
        }
        try (OnDiskImage d = OnDiskImage.open(image)) {
            Set<Long> seen = new HashSet<>();
            for (int c = 0; c < 8; c++) {
                CompressedDescriptor desc = CompressedDescriptor.decode(d.l2Entry(c), 16);
                for (long h = desc.firstHostCluster(16); h <= desc.lastHostCluster(16); h++) {
                    assertTrue(seen.add(h), "host cluster " + h + " shared");
                }
            }
        }
        assertQemuClean(image);
    }

    /**
     * Once the host cluster being packed is freed (its compressed clusters overwritten), it may be handed out whole;
     * the packing must not continue into it. (QEMU 7.2 does continue there and corrupts the cluster's new data.)
     */
    @Test
    void neverPacksIntoAFreedCluster() throws IOException {
        Path image = dir.resolve("freed.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(16L * CS));
        byte[] model = new byte[16 * CS];
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            put(img, model, 0, textCluster(1), true);
            put(img, model, 0, filled(0x22), false); // frees the packed cluster after the flush
            img.flush();
            img.flush();
            put(img, model, CS, filled(0x33), false); // may take the freed cluster whole
            put(img, model, 2L * CS, textCluster(2), true);
            img.flush();
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, CS)));
        }
        Qemu.io(image, "read -P 0x33 64k 64k");
        assertQemuClean(image);
        Path raw = dir.resolve("model.raw");
        Files.write(raw, model);
        assertTrue(Qemu.img("compare", "-f", "qcow2", "-F", "raw", image.toString(), raw.toString())
                .contains("Images are identical"));
    }

    static Stream<CreateOptions> layouts() {
        return Stream.of(CreateOptions.defaults(0), CreateOptions.defaults(0).withVersion(2),
                CreateOptions.defaults(0).withRefcountBits(2), CreateOptions.defaults(0).withRefcountBits(64),
                CreateOptions.defaults(0).withLazyRefcounts(true), CreateOptions.defaults(0).withClusterSize(512),
                CreateOptions.defaults(0).withClusterSize(4096).withCompressionType("zstd"));
    }

    /** Compressed and normal writes from many virtual threads at once leave a valid image with the right data. */
    @ParameterizedTest
    @MethodSource("layouts")
    void concurrentWritersLeaveAValidImage(CreateOptions layout) throws Exception {
        Path image = dir.resolve("many.qcow2");
        int cs = layout.clusterSize();
        int clusters = Math.min(256, (4 << 20) / cs);
        ImageCreator.create(image, layout.withSize((long) clusters * cs));
        byte[] model = MixedData.generate(5, cs, clusters * cs);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults());
                ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (int c = 0; c < clusters; c++) {
                long offset = (long) c * cs;
                boolean compressed = c % 4 != 3;
                ByteBuffer data = ByteBuffer.wrap(model, (int) offset, cs).slice();
                done.add(pool.submit(() -> {
                    if (compressed) {
                        img.writeCompressed(offset, data);
                    } else {
                        img.write(offset, data);
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
            assertEquals(-1, Images.firstDifference(model, Images.readAll(img, 1 << 20)));
        }
        assertQemuClean(image);
        Path raw = dir.resolve("model.raw");
        Files.write(raw, model);
        assertTrue(Qemu.img("compare", "-f", "qcow2", "-F", "raw", image.toString(), raw.toString())
                .contains("Images are identical"));
        try (OnDiskImage d = OnDiskImage.open(image)) {
            assertTrue(d.compare().clean(), d.compare().messages().toString());
        }
    }

    private static void put(Qcow2Image img, byte[] model, long offset, byte[] data, boolean compressed)
            throws IOException {
        if (compressed) {
            img.writeCompressed(offset, ByteBuffer.wrap(data));
        } else {
            img.write(offset, ByteBuffer.wrap(data));
        }
        System.arraycopy(data, 0, model, (int) offset, data.length);
    }

    private static byte[] filled(int value) {
        byte[] b = new byte[CS];
        Arrays.fill(b, (byte) value);
        return b;
    }

    private static byte[] read(Qcow2Image img, long offset, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        img.read(offset, b);
        return b.array();
    }
}
