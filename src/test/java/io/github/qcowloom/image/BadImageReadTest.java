package io.github.qcowloom.image;

import static io.github.qcowloom.image.ImagePoker.appendCluster;
import static io.github.qcowloom.image.ImagePoker.assertReadFails;
import static io.github.qcowloom.image.ImagePoker.create;
import static io.github.qcowloom.image.ImagePoker.getLong;
import static io.github.qcowloom.image.ImagePoker.l2EntryOffset;
import static io.github.qcowloom.image.ImagePoker.l2Offset;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static io.github.qcowloom.image.ImagePoker.readGuest;
import static io.github.qcowloom.image.ImagePoker.write;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.MetadataCorruptionException;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.compress.ClusterCodec;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * L1 and L2 entries are not checked at open (qcow2.md §1 "Not checked at open"); a read that meets a bad one must
 * fail as QEMU's qcow2_get_host_offset does, with a {@link CorruptImageException}, or read what QEMU reads:
 * misaligned L2 tables and data clusters (iotest 060), invalid subcluster bitmaps (iotest 271), undecodable
 * compressed clusters, and the entries QEMU tolerates ([obs] in qcow2.md §7).
 */
class BadImageReadTest {
    private static final int CLUSTER = 65536;
    private static final int L2_INDEX_0 = 0;

    @TempDir
    Path dir;

    /** 1 MiB, 64 KiB clusters, every guest cluster mapped (metadata preallocation); cluster 0 holds 0x5a. */
    private Path mappedImage(CreateOptions options) throws IOException {
        Path image = ImagePoker.createMapped(dir.resolve("mapped.qcow2"), options);
        long data = L2Entry.hostOffset(getLong(image, l2EntryOffset(image, 0)));
        byte[] pattern = new byte[CLUSTER];
        Arrays.fill(pattern, (byte) 0x5a);
        write(image, data, pattern);
        return image;
    }

    private Path mappedImage() throws IOException {
        return mappedImage(CreateOptions.defaults(1 << 20));
    }

    private static byte[] filled(int length, int value) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) value);
        return b;
    }

    private static long l1EntryOffset(Path image) throws IOException {
        return ImagePoker.header(image).l1TableOffset();
    }

    // The unpoked image reads its data: failures below come from the pokes.
    @Test
    void baselineReadsTheMappedData() throws IOException {
        Path image = mappedImage();
        assertArrayEquals(filled(CLUSTER, 0x5a), readGuest(image, 0, CLUSTER));
        assertArrayEquals(new byte[CLUSTER], readGuest(image, CLUSTER, CLUSTER));
    }

    // qcow2_get_host_offset: "L2 table offset %#x unaligned (L1 index: %#x)".
    @ParameterizedTest
    @ValueSource(ints = {512, 4096, CLUSTER - 512})
    void misalignedL2TableOffsetFailsTheRead(int misalignment) throws IOException {
        Path image = mappedImage();
        long l2 = l2Offset(image, 0);
        putLong(image, l1EntryOffset(image), L1Entry.of(l2 + misalignment, true));
        assertReadFails(image, 0, 512, MetadataCorruptionException.class,
                "L2 table offset 0x" + Long.toHexString(l2 + misalignment) + " unaligned (L1 index: 0x0)");
    }

    // qcow2_get_host_offset checks preallocated zero clusters too: a misaligned one must not read as zeroes.
    @Test
    void misalignedZeroAllocatedClusterFailsTheRead() throws IOException {
        Path image = mappedImage();
        long entryAt = l2EntryOffset(image, L2_INDEX_0);
        long data = L2Entry.hostOffset(getLong(image, entryAt));
        putLong(image, entryAt, (data + 512) | L2Entry.ZERO | L2Entry.COPIED);
        assertReadFails(image, 0, 512, MetadataCorruptionException.class,
                "Cluster allocation offset 0x" + Long.toHexString(data + 512) + " unaligned");
    }

    // ... and in extended L2, where an allocated cluster's unallocated subclusters would read the backing file.
    @Test
    void misalignedExtendedL2ClusterFailsTheRead() throws IOException {
        Path image = mappedImage(CreateOptions.defaults(1 << 20).withExtendedL2(true));
        long entryAt = l2EntryOffset(image, L2_INDEX_0);
        long data = L2Entry.hostOffset(getLong(image, entryAt));
        putLong(image, entryAt, data + 512);
        putLong(image, entryAt + 8, 0);
        assertReadFails(image, 0, 512, MetadataCorruptionException.class,
                "Cluster allocation offset 0x" + Long.toHexString(data + 512) + " unaligned");
    }

    // Writes see the entry through the same checked lookup: a misaligned cluster, shared or owned, is refused before
    // any data moves (QEMU's handle_copied refuses an owned one; a shared one it would free as the wrong cluster).
    @Test
    void misalignedClusterFailsTheWrite() throws IOException {
        Path image = mappedImage();
        long entryAt = l2EntryOffset(image, L2_INDEX_0);
        long data = L2Entry.hostOffset(getLong(image, entryAt));
        for (long copied : new long[] {0, L2Entry.COPIED}) {
            putLong(image, entryAt, (data + 512) | copied);
            try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
                MetadataCorruptionException e = assertThrows(MetadataCorruptionException.class,
                        () -> img.write(0, ByteBuffer.allocate(512)));
                assertTrue(e.getMessage().startsWith("Cluster allocation offset 0x" + Long.toHexString(data + 512)
                        + " unaligned"), e.getMessage());
            }
            putLong(image, HeaderField.INCOMPATIBLE_FEATURES.offset(), 0); // the refusal marked the image corrupt
        }
    }

    // qcow2_get_host_offset: "Zero cluster entry found in pre-v3 image".
    @Test
    void zeroFlagInVersion2ImageFailsTheRead() throws IOException {
        Path image = mappedImage(CreateOptions.defaults(1 << 20).withVersion(2));
        long entryAt = l2EntryOffset(image, L2_INDEX_0);
        putLong(image, entryAt, getLong(image, entryAt) | L2Entry.ZERO);
        assertReadFails(image, 0, 512, MetadataCorruptionException.class, "Zero cluster entry found in pre-v3 image");
    }

    // qcow2_get_host_offset: a data-file cluster maps guest offset to the same host offset, or it is corrupt.
    @Test
    void dataFileClusterAtAnotherOffsetFailsTheRead() throws IOException {
        Path image = create(dir.resolve("df.qcow2"), CreateOptions.defaults(1 << 20).withDataFile("df.raw", true));
        putLong(image, l2EntryOffset(image, L2_INDEX_0), CLUSTER | L2Entry.COPIED);
        assertReadFails(image, 0, 512, MetadataCorruptionException.class,
                "External data file host cluster offset 0x10000 does not match guest cluster offset: 0x0");
    }

    // qcow2_get_host_offset: "Cluster allocation offset %#x unaligned".
    @Test
    void misalignedDataClusterOffsetFailsTheRead() throws IOException {
        Path image = mappedImage();
        long entryAt = l2EntryOffset(image, L2_INDEX_0);
        long data = L2Entry.hostOffset(getLong(image, entryAt));
        putLong(image, entryAt, (data + 512) | L2Entry.COPIED);
        assertReadFails(image, 100, 512, MetadataCorruptionException.class,
                "Cluster allocation offset 0x" + Long.toHexString(data + 512) + " unaligned");
        // The neighbouring cluster is unaffected.
        assertArrayEquals(new byte[512], readGuest(image, CLUSTER, 512));
    }

    // [obs] qcow2.md §7: an L1 entry of exactly 0x8000000000000000 (COPIED, offset 0) reads zeroes.
    @Test
    void copiedL1EntryWithOffsetZeroReadsZeroes() throws IOException {
        Path image = mappedImage();
        putLong(image, l1EntryOffset(image), L1Entry.COPIED);
        assertArrayEquals(new byte[CLUSTER], readGuest(image, 0, CLUSTER));
    }

    // L1 reserved bits are masked during I/O (qcow2.md §1), so they do not change what is read.
    @Test
    void l1ReservedBitsAreIgnoredByReads() throws IOException {
        Path image = mappedImage();
        long l1 = l1EntryOffset(image);
        putLong(image, l1, getLong(image, l1) | L1Entry.RESERVED_MASK);
        assertArrayEquals(filled(CLUSTER, 0x5a), readGuest(image, 0, CLUSTER));
    }

    // [obs] qcow2.md §7: L2 reserved bits are accepted during I/O, only check reports them.
    @Test
    void l2ReservedBitsAreIgnoredByReads() throws IOException {
        Path image = mappedImage();
        long entryAt = l2EntryOffset(image, L2_INDEX_0);
        putLong(image, entryAt, getLong(image, entryAt) | L2Entry.RESERVED_MASK);
        assertArrayEquals(filled(CLUSTER, 0x5a), readGuest(image, 0, CLUSTER));
    }

    // QEMU reads an L2 table past the end of the file as zeroes (all entries unallocated).
    @Test
    void l2TablePastEndOfFileReadsZeroes() throws IOException {
        Path image = mappedImage();
        long past = Bytes.alignUp(Files.size(image), CLUSTER) + 16L * CLUSTER;
        putLong(image, l1EntryOffset(image), L1Entry.of(past, true));
        assertArrayEquals(new byte[2 * CLUSTER], readGuest(image, 0, 2 * CLUSTER));
    }

    // [obs] qcow2.md §7: a data cluster past the end of the file reads as zeroes too.
    @Test
    void dataClusterPastEndOfFileReadsZeroes() throws IOException {
        Path image = mappedImage();
        long past = Bytes.alignUp(Files.size(image), CLUSTER) + 1000L * CLUSTER;
        putLong(image, l2EntryOffset(image, L2_INDEX_0), past | L2Entry.COPIED);
        assertArrayEquals(new byte[CLUSTER], readGuest(image, 0, CLUSTER));
    }

    // --- Extended L2 (iotest 271): a subcluster both allocated and zero is QCOW2_SUBCLUSTER_INVALID. ---

    private Path extendedImage() throws IOException {
        return mappedImage(CreateOptions.defaults(1 << 20).withExtendedL2(true));
    }

    @Test
    void extendedBaselineReadsTheMappedData() throws IOException {
        Path image = extendedImage();
        assertEquals(16, ImagePoker.header(image).l2EntrySize());
        assertArrayEquals(filled(CLUSTER, 0x5a), readGuest(image, 0, CLUSTER));
    }

    @ParameterizedTest
    @ValueSource(longs = {0x0000000100000001L, 0x8000000080000000L, 0xffffffffffffffffL})
    void subclusterBothAllocatedAndZeroFailsTheRead(long bitmap) throws IOException {
        Path image = extendedImage();
        putLong(image, l2EntryOffset(image, L2_INDEX_0) + 8, bitmap);
        assertReadFails(image, 0, 512, MetadataCorruptionException.class, "Invalid cluster entry");
    }

    // An unallocated cluster (offset 0) may not have allocation bits in its bitmap.
    @Test
    void unallocatedClusterWithAllocationBitsFailsTheRead() throws IOException {
        Path image = extendedImage();
        long entryAt = l2EntryOffset(image, 1);
        putLong(image, entryAt, 0);
        putLong(image, entryAt + 8, 0x4L);
        assertReadFails(image, CLUSTER, 512, MetadataCorruptionException.class, "Invalid cluster entry");
    }

    // Zero bits alone are valid: those subclusters read as zeroes, the others as data.
    @Test
    void zeroBitsReadAsZeroes() throws IOException {
        Path image = extendedImage();
        putLong(image, l2EntryOffset(image, L2_INDEX_0) + 8, 0xfffffffeL | (1L << 32));
        byte[] expected = filled(CLUSTER, 0x5a);
        Arrays.fill(expected, 0, CLUSTER / 32, (byte) 0);
        assertArrayEquals(expected, readGuest(image, 0, CLUSTER));
    }

    // --- Compressed clusters ---

    /** Points guest cluster 0 at {@code bytes} stored as a compressed cluster of an image of {@code type}. */
    private Path compressedImage(String type, byte[] bytes, boolean extended) throws IOException {
        CreateOptions o = CreateOptions.defaults(1 << 20).withCompressionType(type).withExtendedL2(extended);
        Path image = create(dir.resolve("compressed-" + type + ".qcow2"), o.withPreallocation("metadata"));
        // Not sector-aligned, as QEMU packs compressed clusters back to back.
        int skip = 512 + 24;
        byte[] stored = new byte[skip + bytes.length];
        System.arraycopy(bytes, 0, stored, skip, bytes.length);
        long host = appendCluster(image, stored) + skip;
        putLong(image, l2EntryOffset(image, L2_INDEX_0), CompressedDescriptor.encode(host, bytes.length, 16));
        return image;
    }

    private static byte[] compress(String type, byte[] cluster) {
        byte[] c = ClusterCodec.forType("zstd".equals(type) ? 1 : 0).compress(ByteBuffer.wrap(cluster));
        assertNotNull(c, "compressible");
        return c;
    }

    @ParameterizedTest
    @ValueSource(strings = {"zlib", "zstd"})
    void validCompressedClusterReads(String type) throws IOException {
        byte[] cluster = filled(CLUSTER, 0x33);
        Path image = compressedImage(type, compress(type, cluster), false);
        assertArrayEquals(cluster, readGuest(image, 0, CLUSTER));
    }

    // Garbage where the compressed stream should be: the codec's failure surfaces as CorruptImageException.
    @Test
    void garbageZlibClusterFailsTheRead() throws IOException {
        Path image = compressedImage("zlib", filled(700, 0xff), false);
        assertReadFails(image, 0, 512, CorruptImageException.class, "invalid zlib stream");
    }

    @Test
    void garbageZstdClusterFailsTheRead() throws IOException {
        Path image = compressedImage("zstd", filled(700, 0xff), false);
        assertReadFails(image, 0, 512, CorruptImageException.class, "invalid zstd data");
    }

    // A valid stream that is cut short does not fill the cluster.
    @ParameterizedTest
    @ValueSource(strings = {"zlib", "zstd"})
    void truncatedCompressedClusterFailsTheRead(String type) throws IOException {
        byte[] random = new byte[CLUSTER];
        new java.util.Random(7).nextBytes(random);
        System.arraycopy(filled(CLUSTER / 2, 0), 0, random, 0, CLUSTER / 2);
        byte[] stream = compress(type, random);
        Path image = compressedImage(type, Arrays.copyOf(stream, stream.length / 2), false);
        assertReadFails(image, 0, 512, CorruptImageException.class, "compressed cluster");
    }

    // QEMU's qcow2_get_subcluster_type ignores the bitmap of a compressed cluster when reading; only check
    // reports a non-zero one (observed with qemu-io 7.2: the read returns the data).
    @Test
    void compressedClusterWithNonZeroBitmapStillReads() throws IOException {
        byte[] cluster = filled(CLUSTER, 0x44);
        Path image = compressedImage("zlib", compress("zlib", cluster), true);
        putLong(image, l2EntryOffset(image, L2_INDEX_0) + 8, 0x1L);
        assertArrayEquals(cluster, readGuest(image, 0, CLUSTER));
    }
}
