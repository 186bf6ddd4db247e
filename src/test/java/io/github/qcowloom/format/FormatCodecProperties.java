package io.github.qcowloom.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.snapshot.Snapshot;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

/**
 * Round trips and restatements for the pure codecs of the format package: header (qcow2_update_header /
 * qcow2_do_open), refcount entries of every width, compressed-cluster descriptors
 * (qcow2_parse_compressed_l2_entry), L2 entry classification (qcow2_get_cluster_type and
 * qcow2_get_subcluster_type) and the snapshot table (qcow2_write_snapshots / qcow2_read_snapshots).
 * Each generator draws from a seed, as the other property classes of this project do.
 */
class FormatCodecProperties {
    /** Large enough that every generated table lies inside the file. */
    private static final long FILE_LENGTH = 1L << 50;

    // ---------------------------------------------------------------- Header

    /** Header.encode then Header.parse gives the header back, as encode normalises it. */
    @Property(tries = 400)
    void headerRoundTrips(@ForAll long seed) throws IOException {
        Header h = randomHeader(new Random(seed));
        byte[] cluster0 = h.encode();
        Header parsed = Header.parse(cluster0, FILE_LENGTH);
        assertEquals(h.normalized(), parsed);
        // Unknown extensions come back verbatim and in order, with the known ones around them.
        assertEquals(h.extensions(), parsed.extensions());
        // A second round is byte-identical: encode is a function of the parsed fields.
        assertArrayEquals(cluster0, parsed.encode());
    }

    /** The same bytes padded to a whole cluster (as read from a file) parse to the same header. */
    @Property(tries = 100)
    void headerParsesFromAWholeCluster(@ForAll long seed) throws IOException {
        Header h = randomHeader(new Random(seed));
        byte[] cluster0 = Arrays.copyOf(h.encode(), (int) h.clusterSize());
        assertEquals(h.normalized(), Header.parse(cluster0, FILE_LENGTH));
    }

    /**
     * The in-place writes of the writers (size; l1_size with l1_table_offset; nb_snapshots with snapshots_offset;
     * the feature words) give the bytes a whole new header would: each field's {@link HeaderField#encode} poked
     * into the old encoding equals the encoding of the changed header.
     */
    @Property(tries = 200)
    void headerFieldWritesMatchTheEncoding(@ForAll long seed) throws IOException {
        Random r = new Random(seed);
        Header h = randomHeader(r);
        Header changed = h.withSize(h.size() + h.clusterSize() * r.nextInt(1000))
                .withL1(h.l1Size() + r.nextInt(100), h.l1TableOffset() + h.clusterSize() * r.nextInt(1000))
                .withSnapshots(r.nextInt(Limits.MAX_SNAPSHOTS), h.clusterSize() * r.nextInt(1000));
        byte[] poked = h.encode();
        put(poked, HeaderField.SIZE.encode(changed.size()), HeaderField.SIZE);
        put(poked, HeaderField.L1_SIZE.encode(changed.l1Size(), changed.l1TableOffset()), HeaderField.L1_SIZE);
        put(poked, HeaderField.NB_SNAPSHOTS.encode(changed.nbSnapshots(), changed.snapshotsOffset()),
                HeaderField.NB_SNAPSHOTS);
        if (h.version() == 3) {
            long incompatible = h.incompatibleFeatures() ^ Features.INCOMPAT_DIRTY;
            long autoclear = h.autoclearFeatures() & Features.AUTOCLEAR_DATA_FILE_RAW;
            changed = changed.withFeatures(incompatible, h.compatibleFeatures(), autoclear);
            put(poked, HeaderField.INCOMPATIBLE_FEATURES.encode(incompatible), HeaderField.INCOMPATIBLE_FEATURES);
            put(poked, HeaderField.AUTOCLEAR_FEATURES.encode(autoclear), HeaderField.AUTOCLEAR_FEATURES);
        }
        assertArrayEquals(changed.encode(), poked);
        for (HeaderField f : HeaderField.values()) {
            if (f.version() <= h.version() && f.offset() + f.width() <= poked.length) {
                assertEquals(f.get(poked), f.get(changed.encode()), f.specName());
            }
        }
    }

    private static void put(byte[] header, java.nio.ByteBuffer bytes, HeaderField at) {
        bytes.get(0, header, at.offset(), bytes.remaining());
    }

    /** The table is QCowHeader: fields back to back from the magic, v2 ending at 72 and v3's at 104 (plus the type). */
    @Example
    void headerFieldsLieBackToBack() {
        int end = 0;
        for (HeaderField f : HeaderField.values()) {
            assertEquals(end, f.offset(), f.specName());
            end = f.offset() + f.width();
            if (f == HeaderField.SNAPSHOTS_OFFSET) {
                assertEquals(Limits.V2_HEADER_LENGTH, end);
            }
            if (f == HeaderField.HEADER_LENGTH) {
                assertEquals(Limits.V3_MIN_HEADER_LENGTH, end);
            }
            assertEquals(f.offset() < Limits.V2_HEADER_LENGTH ? 2 : 3, f.version(), f.specName());
        }
        assertEquals(12, HeaderField.L1_SIZE.encode(1, 2).remaining());
        assertThrows(IllegalArgumentException.class, () -> HeaderField.COMPRESSION_TYPE.encode(1, 2));
        assertThrows(IllegalArgumentException.class, () -> HeaderField.SIZE.encode());
    }

    private static final int[] KNOWN_EXTENSIONS = {
        HeaderExtension.END, HeaderExtension.BACKING_FORMAT, HeaderExtension.FEATURE_TABLE, HeaderExtension.BITMAPS,
        HeaderExtension.FDE_POINTER, HeaderExtension.DATA_FILE,
    };

    /** A header that QEMU would open: every field inside its limit, features within the known masks. */
    static Header randomHeader(Random r) {
        int clusterBits = 9 + r.nextInt(13);
        long clusterSize = 1L << clusterBits;
        int version = r.nextBoolean() ? 2 : 3;
        boolean v3 = version == 3;

        long incompatible = 0;
        long compatible = 0;
        long autoclear = 0;
        int refcountOrder = 4;
        int headerLength = Limits.V2_HEADER_LENGTH;
        int compressionType = 0;
        if (v3) {
            headerLength = 104 + 8 * r.nextInt(4);
            refcountOrder = r.nextInt(7);
            incompatible = r.nextLong() & (Features.INCOMPAT_DIRTY | Features.INCOMPAT_CORRUPT
                    | Features.INCOMPAT_DATA_FILE);
            if (clusterBits >= Limits.MIN_EXTENDED_L2_CLUSTER_BITS && r.nextBoolean()) {
                incompatible |= Features.INCOMPAT_EXTL2;
            }
            if (headerLength > 104 && r.nextBoolean()) {
                compressionType = 1;
                incompatible |= Features.INCOMPAT_COMPRESSION;
            }
            compatible = r.nextLong() & Features.COMPAT_LAZY_REFCOUNTS;
            autoclear = r.nextLong() & Features.AUTOCLEAR_BITMAPS;
            if ((incompatible & Features.INCOMPAT_DATA_FILE) != 0 && r.nextBoolean()) {
                autoclear |= Features.AUTOCLEAR_DATA_FILE_RAW;
            }
        }
        int l2Bits = clusterBits - ((incompatible & Features.INCOMPAT_EXTL2) != 0 ? 4 : 3);

        // Virtual size: anything whose L1 table fits QEMU's 4 Mi entries.
        long maxSize = Math.min(Long.MAX_VALUE, (4L << 20) << (clusterBits + l2Bits));
        long size = switch (r.nextInt(4)) {
            case 0 -> 0;
            case 1 -> r.nextLong(Math.min(maxSize, 1L << 40));
            case 2 -> maxSize;
            default -> r.nextLong(maxSize) + 1;
        };
        long neededL1 = Limits.sizeToL1(size, clusterBits, l2Bits);
        int l1Size = (int) Math.min(4L << 20, neededL1 + (r.nextBoolean() ? 0 : r.nextInt(100)));
        long l1Offset = l1Size == 0 && r.nextBoolean() ? 0 : cluster(r, clusterSize);
        int reftableClusters = 1 + r.nextInt((int) Math.min(Limits.MAX_REFTABLE_BYTES / clusterSize, 1000));
        int nbSnapshots = r.nextInt(4) == 0 ? r.nextInt(Limits.MAX_SNAPSHOTS + 1) : 0;
        long snapshotsOffset = nbSnapshots == 0 && r.nextBoolean() ? 0 : cluster(r, clusterSize);

        String backing = r.nextInt(3) == 0 ? null : text(r, 1 + r.nextInt(r.nextBoolean() ? 20 : 1023), false);
        List<HeaderExtension> ext = new ArrayList<>();
        int n = r.nextInt(6);
        for (int i = 0; i < n; i++) {
            ext.add(randomExtension(r, clusterSize));
        }
        // Fit everything in cluster 0: drop extensions from the end, then shorten the name.
        int len = v3 ? headerLength : Limits.V2_HEADER_LENGTH;
        while (true) {
            long used = len + 8 + ext.stream().mapToLong(HeaderExtension::encodedLength).sum()
                    + (backing == null ? 0 : utf8(backing).length);
            if (used <= clusterSize && (backing == null || utf8(backing).length <= Limits.MAX_BACKING_NAME)) {
                break;
            }
            if (!ext.isEmpty()) {
                ext.remove(ext.size() - 1);
            } else {
                int points = backing.codePointCount(0, backing.length());
                backing = points <= 1 ? null : backing.substring(0, backing.offsetByCodePoints(0, points / 2));
            }
        }
        return new Header(version, 0, 0, clusterBits, size, 0, l1Size, l1Offset, cluster(r, clusterSize),
                reftableClusters, nbSnapshots, snapshotsOffset, incompatible, compatible, autoclear, refcountOrder,
                headerLength, compressionType, ext, backing);
    }

    private static HeaderExtension randomExtension(Random r, long clusterSize) {
        return switch (r.nextInt(6)) {
            case 0 -> new HeaderExtension(HeaderExtension.BACKING_FORMAT, utf8(text(r, 1 + r.nextInt(15), true)));
            case 1 -> {
                Features.FeatureName[] names = new Features.FeatureName[r.nextInt(10)];
                for (int i = 0; i < names.length; i++) {
                    names[i] = new Features.FeatureName(r.nextInt(3), r.nextInt(64), text(r, r.nextInt(47), true));
                }
                yield new HeaderExtension(HeaderExtension.FEATURE_TABLE, Header.encodeFeatureTable(names));
            }
            case 2 -> {
                // Valid whether or not the autoclear bit makes QEMU read it.
                byte[] b = new byte[24];
                Bytes.putInt(b, 0, 1 + r.nextInt(Limits.MAX_BITMAPS));
                Bytes.putLong(b, 8, r.nextLong(Limits.MAX_BITMAP_DIRECTORY_BYTES + 1));
                Bytes.putLong(b, 16, cluster(r, clusterSize));
                yield new HeaderExtension(HeaderExtension.BITMAPS, b);
            }
            case 3 -> new HeaderExtension(HeaderExtension.DATA_FILE, utf8(text(r, 1 + r.nextInt(40), false)));
            default -> {
                int drawn = r.nextInt();
                int type = Arrays.stream(KNOWN_EXTENSIONS).anyMatch(k -> k == drawn) ? 0x7e57ed00 : drawn;
                yield new HeaderExtension(type, bytes(r, r.nextInt(r.nextBoolean() ? 9 : 200)));
            }
        };
    }

    /** A random cluster-aligned, non-zero offset well inside {@link #FILE_LENGTH}. */
    private static long cluster(Random r, long clusterSize) {
        return (1 + r.nextLong(1L << 20)) * clusterSize;
    }

    private static byte[] bytes(Random r, int n) {
        byte[] b = new byte[n];
        r.nextBytes(b);
        return b;
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** {@code n} code points: ASCII only, or also multi-byte UTF-8 up to supplementary planes; never NUL. */
    static String text(Random r, int n, boolean ascii) {
        StringBuilder sb = new StringBuilder();
        while (sb.codePointCount(0, sb.length()) < n) {
            int cp = switch (ascii ? 0 : r.nextInt(4)) {
                case 0 -> 0x20 + r.nextInt(0x5f);
                case 1 -> 0xa0 + r.nextInt(0x700);
                case 2 -> 0x3000 + r.nextInt(0xa000);
                default -> 0x10000 + r.nextInt(0x10000);
            };
            sb.appendCodePoint(cp);
        }
        return sb.toString();
    }

    // ---------------------------------------------------------------- Refcount entries

    /**
     * Random sets at random indices read back, and the block's bytes always equal an independent layout of a
     * model array: sub-byte entries packed from the least significant bit of byte 0, wider ones big-endian.
     */
    @Property(tries = 300)
    void refcountSetGetMatchesModel(@ForAll @IntRange(min = 0, max = 6) int order, @ForAll long seed) {
        Random r = new Random(seed);
        RefcountCodec codec = new RefcountCodec(order);
        byte[] block = bytes(r, 8 * (1 + r.nextInt(64)));
        int entries = block.length * 8 >>> order;
        long[] model = new long[entries];
        for (int i = 0; i < entries; i++) {
            model[i] = layoutGet(block, order, i);
            assertEquals(model[i], codec.get(block, i), "initial entry " + i);
        }
        int ops = 1 + r.nextInt(200);
        for (int k = 0; k < ops; k++) {
            int index = r.nextInt(entries);
            long value = switch (r.nextInt(4)) {
                case 0 -> 0;
                case 1 -> codec.max();
                case 2 -> 1;
                default -> codec.bits() == 64 ? r.nextLong() : r.nextLong(codec.max() + 1);
            };
            codec.set(block, index, value);
            model[index] = value;
            assertEquals(value, codec.get(block, index));
            if (index > 0) {
                assertEquals(model[index - 1], codec.get(block, index - 1), "left neighbour");
            }
            if (index + 1 < entries) {
                assertEquals(model[index + 1], codec.get(block, index + 1), "right neighbour");
            }
        }
        assertArrayEquals(layout(model, order, block.length), block);
        assertEquals(entries, codec.entriesPerBlock(block.length));
    }

    /** Entry {@code i} of a block, restated from the spec's bit layout with shifts over the whole block. */
    private static long layoutGet(byte[] block, int order, int i) {
        int bits = 1 << order;
        long v = 0;
        if (bits < 8) {
            int bitPos = i * bits;
            return ((block[bitPos / 8] & 0xff) >>> (bitPos % 8)) & ((1 << bits) - 1);
        }
        for (int b = 0; b < bits / 8; b++) {
            v = (v << 8) | (block[i * bits / 8 + b] & 0xff);
        }
        return v;
    }

    private static byte[] layout(long[] model, int order, int length) {
        int bits = 1 << order;
        byte[] out = new byte[length];
        for (int i = 0; i < model.length; i++) {
            if (bits < 8) {
                int bitPos = i * bits;
                out[bitPos / 8] |= (byte) (model[i] << (bitPos % 8));
            } else {
                for (int b = 0; b < bits / 8; b++) {
                    out[i * bits / 8 + b] = (byte) (model[i] >>> (bits - 8 - 8 * b));
                }
            }
        }
        return out;
    }

    @Example
    void refcountMaxIsAllOnesOfTheWidth() {
        long[] expected = {1, 3, 15, 255, 65535, 0xffffffffL, -1L};
        for (int order = 0; order <= 6; order++) {
            RefcountCodec codec = new RefcountCodec(order);
            assertEquals(1 << order, codec.bits());
            assertEquals(expected[order], codec.max(), "order " + order);
            byte[] block = new byte[16];
            codec.set(block, 1, codec.max());
            assertEquals(codec.max(), codec.get(block, 1));
            assertEquals(0, codec.get(block, 0));
            if (order < 6) {
                int o = order;
                assertThrows(IllegalArgumentException.class, () -> codec.set(block, 0, expected[o] + 1));
                assertThrows(IllegalArgumentException.class, () -> codec.set(block, 0, -1));
            }
        }
        assertThrows(IllegalArgumentException.class, () -> new RefcountCodec(7));
        assertThrows(IllegalArgumentException.class, () -> new RefcountCodec(-1));
    }

    @Example
    void subByteEntryZeroIsTheLeastSignificantBits() {
        byte[] b = new byte[2];
        new RefcountCodec(0).set(b, 0, 1);
        assertEquals(0x01, b[0]);
        new RefcountCodec(0).set(b, 7, 1);
        assertEquals((byte) 0x81, b[0]);
        b = new byte[2];
        new RefcountCodec(1).set(b, 0, 3);
        new RefcountCodec(1).set(b, 3, 1);
        assertEquals(0x43, b[0]);
        new RefcountCodec(2).set(b, 3, 0xa);
        assertEquals((byte) 0xa0, b[1]);
        assertEquals(0x43, b[0]);
        b = new byte[4];
        new RefcountCodec(4).set(b, 1, 0x1234);
        assertArrayEquals(new byte[] {0, 0, 0x12, 0x34}, b);
    }

    // ---------------------------------------------------------------- Compressed descriptors

    /** encode then decode gives the offset back and a length covering the bytes to within one sector. */
    @Property(tries = 500)
    void compressedDescriptorRoundTrips(@ForAll @IntRange(min = 9, max = 21) int clusterBits, @ForAll long seed) {
        Random r = new Random(seed);
        int shift = CompressedDescriptor.sizeShift(clusterBits);
        long offset = switch (r.nextInt(4)) {
            case 0 -> r.nextLong(1L << 20);
            case 1 -> (1L << shift) - 1 - r.nextInt(4096);
            case 2 -> r.nextLong(1L << 40) * 512;
            default -> r.nextLong(1L << shift);
        };
        int clusterSize = 1 << clusterBits;
        // The descriptor can describe up to twice the cluster size (QEMU writes less than one cluster).
        int limit = (r.nextBoolean() ? clusterSize : 2 * clusterSize) - (int) (offset & 511);
        int bytes = r.nextInt(4) == 0 ? limit : 1 + r.nextInt(limit);
        long entry = CompressedDescriptor.encode(offset, bytes, clusterBits);
        assertTrue((entry & L2Entry.COMPRESSED) != 0);
        assertFalse(L2Entry.copied(entry), "compressed entries never carry COPIED");
        assertEquals(ClusterType.COMPRESSED, L2Entry.type(entry, false, false));
        CompressedDescriptor d = CompressedDescriptor.decode(entry, clusterBits);
        assertEquals(offset, d.hostOffset());
        assertEquals(d.sectors() * 512 - (offset & 511), d.length());
        assertTrue(d.length() >= bytes && d.length() - bytes < 512, "length " + d.length() + " for " + bytes);
        assertTrue(d.sectors() <= 1 << (clusterBits - 8));
    }

    /** Any entry decodes to fields that re-encode its low 62 bits exactly, with length = sectors*512 − (offset & 511). */
    @Property(tries = 500)
    void compressedDescriptorDecodesEveryEntry(@ForAll @IntRange(min = 9, max = 21) int clusterBits,
            @ForAll long entry) {
        int shift = CompressedDescriptor.sizeShift(clusterBits);
        CompressedDescriptor d = CompressedDescriptor.decode(entry, clusterBits);
        assertTrue(d.hostOffset() >= 0 && d.hostOffset() < 1L << shift);
        assertTrue(d.sectors() >= 1 && d.sectors() <= 1 << (clusterBits - 8));
        assertEquals(d.sectors() * 512L - (d.hostOffset() & 511), d.length());
        assertTrue(d.length() >= 1);
        long low62 = (1L << 62) - 1;
        assertEquals(entry & low62, (((long) d.sectors() - 1) << shift | d.hostOffset()) & low62);
        assertEquals(d.hostOffset() >>> clusterBits, d.firstHostCluster(clusterBits));
        assertEquals((d.hostOffset() + d.length() - 1) >>> clusterBits, d.lastHostCluster(clusterBits));
    }

    @Example
    void compressedDescriptorRejectsWhatDoesNotFit() {
        // The sector count has cluster_bits - 8 bits: up to 2 * cluster_size / 512 sectors (QEMU's csize_mask).
        assertEquals(256, CompressedDescriptor.decode(CompressedDescriptor.encode(0, 2 * 65536, 16), 16).sectors());
        assertThrows(IllegalArgumentException.class, () -> CompressedDescriptor.encode(0, 2 * 65536 + 1, 16));
        assertThrows(IllegalArgumentException.class, () -> CompressedDescriptor.encode(511, 2 * 65536, 16));
        assertThrows(IllegalArgumentException.class, () -> CompressedDescriptor.encode(1L << 54, 512, 16));
        // QEMU's layout for 64 KiB clusters: x = 54, so the sector count starts at bit 54.
        assertEquals(L2Entry.COMPRESSED | (1L << 54) | 0x10000, CompressedDescriptor.encode(0x10000, 1000, 16));
    }

    // ---------------------------------------------------------------- L2 entries

    /** qcow2_get_cluster_type, restated from qcow2.h. */
    static ClusterType qemuClusterType(long e, boolean extendedL2, boolean dataFile) {
        boolean compressed = (e & (1L << 62)) != 0;
        boolean zero = (e & 1) != 0;
        long offset = e & 0x00fffffffffffe00L;
        boolean copied = e < 0;
        if (compressed) {
            return ClusterType.COMPRESSED;
        } else if (zero && !extendedL2) {
            return offset != 0 ? ClusterType.ZERO_ALLOC : ClusterType.ZERO_PLAIN;
        } else if (offset == 0) {
            return dataFile && copied ? ClusterType.NORMAL : ClusterType.UNALLOCATED;
        }
        return ClusterType.NORMAL;
    }

    /** qcow2_get_subcluster_type for an image with subclusters, restated from qcow2.h. */
    static SubclusterType qemuSubclusterType(long e, long bitmap, int sc, boolean dataFile) {
        boolean alloc = (bitmap & (1L << sc)) != 0;
        boolean zero = (bitmap & (1L << (32 + sc))) != 0;
        return switch (qemuClusterType(e, true, dataFile)) {
            case COMPRESSED -> SubclusterType.COMPRESSED;
            case NORMAL -> ((bitmap >>> 32) & bitmap & 0xffffffffL) != 0 ? SubclusterType.INVALID
                    : zero ? SubclusterType.ZERO_ALLOC
                    : alloc ? SubclusterType.NORMAL : SubclusterType.UNALLOCATED_ALLOC;
            case UNALLOCATED -> (bitmap & 0xffffffffL) != 0 ? SubclusterType.INVALID
                    : zero ? SubclusterType.ZERO_PLAIN : SubclusterType.UNALLOCATED_PLAIN;
            default -> throw new AssertionError("no zero clusters with subclusters");
        };
    }

    @Property(tries = 2000)
    void l2ClassificationMatchesQemu(@ForAll long seed, @ForAll boolean dataFile,
            @ForAll @IntRange(min = 0, max = 31) int sc) {
        Random r = new Random(seed);
        long entry = randomEntry(r);
        long bitmap = randomBitmap(r);
        assertEquals(qemuClusterType(entry, false, dataFile), L2Entry.type(entry, false, dataFile));
        assertEquals(qemuClusterType(entry, true, dataFile), L2Entry.type(entry, true, dataFile));
        assertEquals(qemuSubclusterType(entry, bitmap, sc, dataFile),
                L2Entry.subclusterType(entry, bitmap, sc, dataFile),
                () -> String.format("entry %#x bitmap %#x sc %d", entry, bitmap, sc));
        assertEquals(entry & 0x00fffffffffffe00L, L2Entry.hostOffset(entry));
    }

    private static long randomEntry(Random r) {
        long offset = switch (r.nextInt(4)) {
            case 0 -> 0;
            case 1 -> (r.nextLong() & 0x00fffffffffffe00L);
            case 2 -> r.nextLong(1L << 30) << 9;
            default -> r.nextLong();
        };
        long flags = 0;
        if (r.nextBoolean()) {
            flags |= L2Entry.COPIED;
        }
        if (r.nextInt(3) == 0) {
            flags |= L2Entry.COMPRESSED;
        }
        if (r.nextInt(3) == 0) {
            flags |= L2Entry.ZERO;
        }
        if (r.nextInt(4) == 0) {
            flags |= r.nextLong() & L2Entry.RESERVED_MASK;
        }
        return offset | flags;
    }

    private static long randomBitmap(Random r) {
        long alloc = r.nextLong() & 0xffffffffL;
        long zero = r.nextLong() & 0xffffffffL;
        return switch (r.nextInt(6)) {
            case 0 -> 0;
            case 1 -> alloc;
            case 2 -> zero << 32;
            case 3 -> ((zero & ~alloc) << 32) | alloc;
            case 4 -> (zero << 32) | alloc;
            default -> -1L;
        };
    }

    // ---------------------------------------------------------------- Snapshot table

    /** encode then parse gives the snapshots back, with UTF-8 ids and names and 0..1024 bytes of extra data. */
    @Property(tries = 200)
    void snapshotTableRoundTrips(@ForAll long seed) throws IOException {
        Random r = new Random(seed);
        List<Snapshot> snapshots = new ArrayList<>();
        int n = r.nextInt(9);
        for (int i = 0; i < n; i++) {
            snapshots.add(new Snapshot(r.nextLong(), r.nextInt(Integer.MAX_VALUE), text(r, r.nextInt(12), false),
                    text(r, r.nextInt(r.nextBoolean() ? 20 : 300), r.nextBoolean()), u32(r), u32(r), r.nextLong(),
                    u32(r), bytes(r, r.nextInt(4) == 0 ? Limits.MAX_SNAPSHOT_EXTRA_DATA : r.nextInt(40))));
        }
        byte[] table = SnapshotTable.encode(snapshots);
        assertEquals(SnapshotTable.encodedLength(snapshots), table.length);
        assertEquals(0, table.length % 8);
        long offset = 1L << 16;
        RangeReader reader = (off, len) -> Arrays.copyOfRange(table, (int) (off - offset), (int) (off - offset) + len);
        List<Snapshot> parsed = SnapshotTable.parse(reader, offset, n, offset + table.length);
        assertEquals(snapshots, parsed);
    }

    private static long u32(Random r) {
        return r.nextLong(1L << 32);
    }

    // ---------------------------------------------------------------- Header.parse on arbitrary bytes

    /** Whatever the bytes, Header.parse answers with a header or a typed exception (fast, no large allocation). */
    @Property(tries = 300)
    void headerParseOfRandomBytesIsTyped(@ForAll long seed) {
        Random r = new Random(seed);
        byte[] b = bytes(r, r.nextInt(4096));
        if (b.length >= 8) {
            Bytes.putInt(b, 0, Header.MAGIC);
            Bytes.putInt(b, 4, 2 + r.nextInt(2));
        }
        if (b.length >= 24 && r.nextBoolean()) {
            Bytes.putInt(b, 20, 9 + r.nextInt(13));
        }
        try {
            Header.parse(b, r.nextBoolean() ? b.length : r.nextLong(Long.MAX_VALUE));
        } catch (CorruptImageException | UnsupportedFeatureException e) {
            assertFalse(e.getMessage().isBlank());
        }
    }
}
