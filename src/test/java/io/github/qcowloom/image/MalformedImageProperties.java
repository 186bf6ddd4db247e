package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.compress.ClusterCodec;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

/**
 * Fuzzing goals of crash.md §4 in miniature, in the spirit of QEMU's tests/image-fuzzer: valid seed images
 * (v2 and v3, cluster sizes 512 B to 64 KiB, extended L2, zlib and zstd compressed clusters, zero clusters, a
 * snapshot, extensions) get random field values at the header offsets 0..112, bit flips, damaged L1/L2/snapshot
 * entries and truncations. {@link Header#parse} must then return or throw {@link CorruptImageException} /
 * {@link UnsupportedFeatureException}; {@link Qcow2Image#open} followed by reading up to 4 MiB may only let the
 * api package's {@link ImageException} family or {@link OutOfRangeException} escape. Neither may allocate more
 * than a small multiple of its input (tables are sized from the file before anything is allocated), and every
 * try must end fast.
 */
class MalformedImageProperties {
    private static final long READ_CAP = 4L << 20;
    private static final Duration PER_TRY = Duration.ofSeconds(10);

    /** A valid image and the 8-aligned offsets of its interesting 64-bit metadata words. */
    record Seed(String name, byte[] bytes, int clusterSize, long[] metadata) {
    }

    private static final List<Seed> SEEDS = new ArrayList<>();
    private static Path dir;

    @BeforeContainer
    static void buildSeeds() throws IOException {
        dir = Files.createTempDirectory("malformed-seeds");
        SEEDS.add(seed("v3-512-zlib", CreateOptions.defaults(1 << 20).withClusterSize(512), true));
        SEEDS.add(seed("v2-4k-zlib", CreateOptions.defaults(1 << 20).withVersion(2).withClusterSize(4096), false));
        SEEDS.add(seed("v3-16k-extl2-zstd", CreateOptions.defaults(1 << 20).withClusterSize(16384)
                .withExtendedL2(true).withCompressionType("zstd"), true));
        SEEDS.add(seed("v3-64k-rc1-lazy", CreateOptions.defaults(1 << 20).withRefcountBits(1)
                .withLazyRefcounts(true), false));
        // Warm up the parse and read paths (class loading, lambda linkage) before allocations are measured.
        for (Seed s : SEEDS) {
            Header.parse(cluster0(s, s.bytes()), s.bytes().length);
            openAndRead(s.bytes());
        }
    }

    @AfterContainer
    static void deleteSeeds() throws IOException {
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    /**
     * A mapped 1 MiB image (metadata preallocation) with data in cluster 0, a zero cluster (v3), an
     * unallocated cluster, a compressed cluster and, if asked, one snapshot; plus a backing-format and an unknown
     * extension for v3.
     */
    private static Seed seed(String name, CreateOptions options, boolean snapshot) throws IOException {
        Path image = dir.resolve(name + ".qcow2");
        ImagePoker.createMapped(image, options);
        Header h = ImagePoker.header(image);
        int cs = (int) h.clusterSize();
        int entry = h.l2EntrySize();
        List<Long> metadata = new ArrayList<>();
        if (h.version() == 3) {
            List<HeaderExtension> ext = new ArrayList<>(h.extensions());
            ext.add(0, new HeaderExtension(HeaderExtension.BACKING_FORMAT, "qcow2".getBytes(StandardCharsets.UTF_8)));
            ext.add(new HeaderExtension(0x0badf00d, new byte[] {1, 2, 3, 4, 5}));
            if (h.clusterSize() >= 4096) {
                ImagePoker.rewriteHeader(image, ImagePoker.withExtensions(h, ext));
            }
        }
        long l1 = h.l1TableOffset();
        long l2 = ImagePoker.l2Offset(image, 0);
        for (int i = 0; i < Math.min(4, h.l1Size()); i++) {
            metadata.add(l1 + 8L * i);
        }
        for (int i = 0; i < 6; i++) {
            metadata.add(l2 + (long) entry * i);
            if (entry == 16) {
                metadata.add(l2 + (long) entry * i + 8);
            }
        }
        metadata.add(h.refcountTableOffset());
        byte[] pattern = new byte[cs];
        new Random(1).nextBytes(pattern);
        Arrays.fill(pattern, cs / 2, cs, (byte) 0x5a);
        ImagePoker.write(image, L2Entry.hostOffset(ImagePoker.getLong(image, l2)), pattern);
        // Cluster 1: zero (v3 standard: zero flag; extended: every subcluster reads as zero).
        if (h.extendedL2()) {
            ImagePoker.putLong(image, l2 + entry + 8, 0xffffffffL << 32);
        } else if (h.version() == 3) {
            ImagePoker.putLong(image, l2 + entry, ImagePoker.getLong(image, l2 + entry) | L2Entry.ZERO);
        }
        // Cluster 2: unallocated.
        ImagePoker.putLong(image, l2 + 2L * entry, 0);
        if (h.extendedL2()) {
            ImagePoker.putLong(image, l2 + 2L * entry + 8, 0);
        }
        // Cluster 3: compressed.
        byte[] compressed = ClusterCodec.forType(h.compressionType()).compress(ByteBuffer.wrap(pattern));
        long host = ImagePoker.appendCluster(image, compressed);
        ImagePoker.putLong(image, l2 + 3L * entry, CompressedDescriptor.encode(host, compressed.length, h.clusterBits()));
        if (h.extendedL2()) {
            ImagePoker.putLong(image, l2 + 3L * entry + 8, 0);
        }
        if (snapshot) {
            Snapshot s = new Snapshot(l1, h.l1Size(), "1", "before", 1700000000, 0, 0, 0,
                    Snapshot.extraData(0, h.size(), -1));
            long table = ImagePoker.appendCluster(image, SnapshotTable.encode(List.of(s)));
            ImagePoker.putInt(image, HeaderField.NB_SNAPSHOTS, 1);
            ImagePoker.putLong(image, HeaderField.SNAPSHOTS_OFFSET, table);
            for (int i = 0; i < 5; i++) {
                metadata.add(table + 8L * i);
            }
        }
        byte[] bytes = Files.readAllBytes(image);
        Seed seed = new Seed(name, bytes, cs, metadata.stream().mapToLong(Long::longValue).toArray());
        // The seed reads back what was put in it, so the properties start from working images.
        try (Qcow2Image img = Qcow2Image.open(new MemoryStorage(bytes), null, OpenOptions.readOnlyDefaults())) {
            byte[] c0 = new byte[cs];
            img.read(0, ByteBuffer.wrap(c0));
            assertArrayEquals(pattern, c0, name);
            byte[] c3 = new byte[cs];
            img.read(3L * cs, ByteBuffer.wrap(c3));
            assertArrayEquals(pattern, c3, name);
            assertArrayEquals(new byte[cs], readRange(img, cs, cs), name);
        }
        return seed;
    }

    private static byte[] readRange(Qcow2Image img, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        img.read(offset, ByteBuffer.wrap(b));
        return b;
    }

    // ------------------------------------------------------------------ mutations

    /** Header fields (offset, width in bytes) as qcow2.md §1 lists them. */
    private static final int[][] FIELDS = {
        {0, 4}, {4, 4}, {8, 8}, {16, 4}, {20, 4}, {24, 8}, {32, 4}, {36, 4}, {40, 8}, {48, 8}, {56, 4}, {60, 4},
        {64, 8}, {72, 8}, {80, 8}, {88, 8}, {96, 4}, {100, 4}, {104, 1},
    };

    /** A mutated copy of a seed and what was done to it, for the failure message. */
    record Mutant(Seed seed, byte[] bytes, String description) {
    }

    static Mutant mutate(long randomSeed) {
        Random r = new Random(randomSeed);
        Seed seed = SEEDS.get(r.nextInt(SEEDS.size()));
        byte[] b = seed.bytes().clone();
        StringBuilder what = new StringBuilder(seed.name());
        int n = 1 + r.nextInt(4);
        for (int i = 0; i < n; i++) {
            switch (r.nextInt(10)) {
                case 0, 1, 2, 3 -> {
                    int[] field = FIELDS[r.nextInt(FIELDS.length)];
                    long v = interesting(r, b.length, seed.clusterSize());
                    put(b, field[0], field[1], v);
                    what.append(String.format("; field@%d=%#x", field[0], v));
                }
                case 4 -> {
                    int at = r.nextInt(Math.min(b.length, 128));
                    int bit = r.nextInt(8);
                    b[at] ^= (byte) (1 << bit);
                    what.append(String.format("; flip@%d.%d", at, bit));
                }
                case 5 -> {
                    int at = r.nextInt(Math.min(b.length, seed.clusterSize()));
                    b[at] = (byte) r.nextInt(256);
                    what.append(String.format("; byte@%d=%#x", at, b[at]));
                }
                case 6, 7 -> {
                    long at = seed.metadata()[r.nextInt(seed.metadata().length)];
                    long v = entry(r, b.length, seed.clusterSize());
                    if (at + 8 <= b.length) {
                        Bytes.putLong(b, (int) at, v);
                    }
                    what.append(String.format("; word@%#x=%#x", at, v));
                }
                case 8 -> {
                    int at = r.nextInt(b.length);
                    b[at] ^= (byte) (1 + r.nextInt(255));
                    what.append(String.format("; anywhere@%d", at));
                }
                default -> {
                    int length = switch (r.nextInt(4)) {
                        case 0 -> r.nextInt(Math.min(b.length, 256));
                        case 1 -> r.nextInt(Math.min(b.length, seed.clusterSize() * 2));
                        case 2 -> Math.max(0, b.length - seed.clusterSize() * (1 + r.nextInt(8)));
                        default -> r.nextInt(b.length);
                    };
                    b = Arrays.copyOf(b, length);
                    what.append("; truncate=").append(length);
                }
            }
            if (b.length == 0) {
                break;
            }
        }
        return new Mutant(seed, b, what.toString());
    }

    private static void put(byte[] b, int offset, int width, long v) {
        if (offset + width > b.length) {
            return;
        }
        switch (width) {
            case 1 -> b[offset] = (byte) v;
            case 4 -> Bytes.putInt(b, offset, (int) v);
            default -> Bytes.putLong(b, offset, v);
        }
    }

    /** Boundary values in the style of image-fuzzer: zero, ones, powers of two and their neighbours, offsets. */
    private static long interesting(Random r, long fileLength, int clusterSize) {
        return switch (r.nextInt(12)) {
            case 0 -> 0;
            case 1 -> 1;
            case 2 -> -1;
            case 3 -> 1L << r.nextInt(64);
            case 4 -> (1L << r.nextInt(64)) - 1;
            case 5 -> (1L << r.nextInt(64)) + 1;
            case 6 -> r.nextInt(32);
            case 7 -> r.nextInt(200);
            case 8 -> (long) r.nextInt((int) (fileLength / clusterSize) + 4) * clusterSize;
            case 9 -> fileLength + r.nextInt(3) - 1;
            case 10 -> 0x7fffffffL + r.nextInt(3) - 1;
            default -> r.nextLong();
        };
    }

    /** L1/L2/bitmap/snapshot words: flags with offsets inside, past and across the file, aligned or not. */
    private static long entry(Random r, long fileLength, int clusterSize) {
        long inFile = (long) r.nextInt((int) (fileLength / clusterSize) + 1) * clusterSize;
        long offset = switch (r.nextInt(6)) {
            case 0 -> 0;
            case 1 -> inFile;
            case 2 -> inFile + 512L * (1 + r.nextInt(4));
            case 3 -> fileLength + (long) clusterSize * r.nextInt(1 << 20);
            case 4 -> r.nextLong() & L1Entry.OFFSET_MASK;
            default -> r.nextLong();
        };
        long flags = switch (r.nextInt(6)) {
            case 0 -> 0;
            case 1 -> L2Entry.COPIED;
            case 2 -> L2Entry.COMPRESSED | (r.nextLong() & 0x3fff000000000000L);
            case 3 -> L2Entry.ZERO;
            case 4 -> r.nextLong() & (L2Entry.RESERVED_MASK | L2Entry.COPIED);
            default -> r.nextLong() & 0xffffffff00000000L;
        };
        return offset | flags;
    }

    private static byte[] cluster0(Seed seed, byte[] bytes) {
        return Arrays.copyOf(bytes, Math.min(bytes.length, seed.clusterSize()));
    }

    // ------------------------------------------------------------------ properties

    /** Header.parse on a damaged cluster 0 returns a header or throws one of the two typed exceptions. */
    @Property(tries = 1500)
    void headerParseOfMutatedImageIsTyped(@ForAll long randomSeed) {
        Mutant m = mutate(randomSeed);
        byte[] cluster0 = cluster0(m.seed(), m.bytes());
        long before = allocatedSoFar();
        try {
            Header.parse(cluster0, m.bytes().length);
        } catch (CorruptImageException | UnsupportedFeatureException e) {
            assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), m.description());
        } catch (Throwable t) {
            throw new AssertionError("untyped failure for " + m.description(), t);
        }
        long allocated = allocatedSoFar() - before;
        long bound = 4L * cluster0.length + (256 << 10);
        assertTrue(allocated <= bound, () -> "Header.parse allocated " + allocated + " bytes for "
                + cluster0.length + " input bytes: " + m.description());
    }

    /**
     * Opening a damaged image from memory and reading up to 4 MiB of it only ever fails with an api exception,
     * within {@link #PER_TRY}, and the open allocates no more than a small multiple of the file.
     */
    @Property(tries = 400)
    void openAndReadOfMutatedImageIsTyped(@ForAll long randomSeed) {
        Mutant m = mutate(randomSeed);
        long allocated = assertTimeoutPreemptively(PER_TRY, () -> {
            try {
                return openAndRead(m.bytes());
            } catch (ImageException | OutOfRangeException e) {
                assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), m.description());
                return 0L;
            } catch (Throwable t) {
                return fail("untyped failure for " + m.description(), t);
            }
        }, m::description);
        long bound = 4L * m.bytes().length + (1 << 20);
        assertTrue(allocated <= bound, () -> "open allocated " + allocated + " bytes for a " + m.bytes().length
                + "-byte file: " + m.description());
    }

    /** Opens {@code bytes} read-only and reads up to {@link #READ_CAP} of the disk; returns the open's allocation. */
    private static long openAndRead(byte[] bytes) throws IOException {
        MemoryStorage storage = new MemoryStorage(bytes);
        long before = allocatedSoFar();
        try (Qcow2Image img = Qcow2Image.open(storage, null, OpenOptions.readOnlyDefaults())) {
            long allocated = allocatedSoFar() - before;
            long end = Math.min(img.size(), READ_CAP);
            ByteBuffer buf = ByteBuffer.allocate(192 * 1024 + 512);
            for (long off = 0; off < end; off += buf.capacity()) {
                buf.clear().limit((int) Math.min(buf.capacity(), end - off));
                img.read(off, buf);
            }
            return allocated;
        } finally {
            storage.close();
        }
    }

    /**
     * Bytes allocated by the current thread so far, from com.sun.management.ThreadMXBean. Reached reflectively:
     * the test classes compile inside the io.github.qcowloom module, which does not read java.management (they
     * run on the class path, where it is readable).
     */
    private static final MethodHandle ALLOCATED;
    private static final boolean ALLOCATION_MEASURED;

    static {
        try {
            Object bean = Class.forName("java.lang.management.ManagementFactory").getMethod("getThreadMXBean")
                    .invoke(null);
            Class<?> type = Class.forName("com.sun.management.ThreadMXBean");
            MethodHandles.Lookup lookup = MethodHandles.publicLookup();
            ALLOCATED = lookup.findVirtual(type, "getCurrentThreadAllocatedBytes", MethodType.methodType(long.class))
                    .bindTo(bean);
            ALLOCATION_MEASURED = (boolean) type.getMethod("isThreadAllocatedMemorySupported").invoke(bean)
                    && (boolean) type.getMethod("isThreadAllocatedMemoryEnabled").invoke(bean);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private static long allocatedSoFar() {
        try {
            return (long) ALLOCATED.invokeExact();
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    // Allocation is measured per thread: make sure the JVM can, or the bounds above would check nothing.
    @Example
    void threadAllocationIsMeasurable() {
        assertTrue(ALLOCATION_MEASURED);
        long before = allocatedSoFar();
        byte[] big = new byte[1 << 20];
        assertTrue(allocatedSoFar() - before >= big.length);
    }
}
