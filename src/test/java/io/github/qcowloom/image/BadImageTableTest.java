package io.github.qcowloom.image;

import static io.github.qcowloom.format.HeaderField.L1_SIZE;
import static io.github.qcowloom.format.HeaderField.L1_TABLE_OFFSET;
import static io.github.qcowloom.format.HeaderField.REFCOUNT_TABLE_CLUSTERS;
import static io.github.qcowloom.format.HeaderField.REFCOUNT_TABLE_OFFSET;
import static io.github.qcowloom.format.HeaderField.SIZE;
import static io.github.qcowloom.image.ImagePoker.assertHeaderRejected;
import static io.github.qcowloom.image.ImagePoker.create;
import static io.github.qcowloom.image.ImagePoker.putInt;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.format.Header;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The refcount table, the active L1 table and the virtual size, as qcow2_do_open validates them with
 * qcow2_validate_table before anything is allocated from them: CVE-2014-0144 "Check refcount table size" (8 MiB
 * cap), 8c7de28 "Validate refcount table offset", CVE-2014-0144 "Validate active L1 table offset and size",
 * "L1 table is too small" and "Image is too big" (qcow2.md §1, §7). Table sizes above QEMU's caps are EFBIG,
 * i.e. {@link ImageTooLargeException}; bad offsets are EINVAL, a plain {@link CorruptImageException}.
 */
class BadImageTableTest {
    private static final long CLUSTER = 65536;

    @TempDir
    Path dir;

    private Path image() throws IOException {
        return create(dir.resolve("bad.qcow2"));
    }

    // --- Refcount table ---

    // qcow2_do_open: refcount_table_clusters == 0 is an error outside check mode.
    @Test
    void missingRefcountTableIsRejected() throws IOException {
        Path image = image();
        putInt(image, REFCOUNT_TABLE_CLUSTERS, 0);
        assertHeaderRejected(image, CorruptImageException.class, "Image does not contain a reference count table");
    }

    // QCOW_MAX_REFTABLE_SIZE is 8 MiB: 128 clusters of 64 KiB at most.
    @ParameterizedTest
    @ValueSource(ints = {129, 1 << 20, -1})
    void refcountTableAbove8MiBIsTooLarge(int clusters) throws IOException {
        Path image = image();
        putInt(image, REFCOUNT_TABLE_CLUSTERS, clusters);
        assertHeaderRejected(image, ImageTooLargeException.class, "Reference count table too large");
    }

    // Exactly 8 MiB passes the cap (and then fails only because the file is shorter).
    @Test
    void refcountTableOfExactly8MiBPassesTheCap() throws IOException {
        Path image = image();
        putInt(image, REFCOUNT_TABLE_CLUSTERS, 128);
        assertHeaderRejected(image, CorruptImageException.class,
                "Reference count table at offset 0x10000 (8388608 bytes) extends past the end of the file");
    }

    // qcow2_validate_table: a misaligned offset is "offset invalid".
    @ParameterizedTest
    @ValueSource(longs = {CLUSTER + 512, CLUSTER - 8, 1})
    void misalignedRefcountTableOffsetIsInvalid(long offset) throws IOException {
        Path image = image();
        putLong(image, REFCOUNT_TABLE_OFFSET, offset);
        assertHeaderRejected(image, CorruptImageException.class, "Reference count table offset invalid");
    }

    // Offset 0 would put the table on top of the header.
    @Test
    void refcountTableAtOffsetZeroIsInvalid() throws IOException {
        Path image = image();
        putLong(image, REFCOUNT_TABLE_OFFSET, 0);
        assertHeaderRejected(image, CorruptImageException.class, "Reference count table offset invalid: 0");
    }

    @Test
    void refcountTablePastEndOfFileIsRejected() throws IOException {
        Path image = image();
        putLong(image, REFCOUNT_TABLE_OFFSET, 1000 * CLUSTER);
        assertHeaderRejected(image, CorruptImageException.class, "extends past the end of the file");
    }

    // qcow2_validate_table: offset + size > INT64_MAX (or an offset that is negative as int64) is "offset invalid".
    @ParameterizedTest
    @ValueSource(longs = {0x7fffffffffff0000L, 0x8000000000000000L, 0xffffffffffff0000L})
    void refcountTableOffsetOverflowingInt64IsInvalid(long offset) throws IOException {
        Path image = image();
        putLong(image, REFCOUNT_TABLE_OFFSET, offset);
        assertHeaderRejected(image, CorruptImageException.class, "Reference count table offset invalid");
    }

    // --- Active L1 table ---

    // QCOW_MAX_L1_SIZE is 32 MiB: 4 Mi entries at most ("Active L1 table too large", EFBIG).
    @ParameterizedTest
    @ValueSource(ints = {(4 << 20) + 1, 0x7fffffff, -1})
    void l1TableAbove4MiEntriesIsTooLarge(int entries) throws IOException {
        Path image = image();
        putInt(image, L1_SIZE, entries);
        assertHeaderRejected(image, ImageTooLargeException.class, "Active L1 table too large");
    }

    // Exactly 4 Mi entries passes the cap (and then fails only because the file is shorter).
    @Test
    void l1TableOfExactly4MiEntriesPassesTheCap() throws IOException {
        Path image = image();
        putInt(image, L1_SIZE, 4 << 20);
        assertHeaderRejected(image, CorruptImageException.class, "Active L1 table at offset");
    }

    // qcow2_do_open: l1_size < size_to_l1(size) is "L1 table is too small" (64 KiB clusters: 512 MiB per entry).
    @Test
    void l1TableSmallerThanTheVirtualSizeNeedsIsTooSmall() throws IOException {
        Path image = image();
        putLong(image, SIZE, (512L << 20) + 1);
        assertHeaderRejected(image, CorruptImageException.class, "L1 table is too small");
    }

    @Test
    void emptyL1TableForANonEmptyDiskIsTooSmall() throws IOException {
        Path image = image();
        putInt(image, L1_SIZE, 0);
        assertHeaderRejected(image, CorruptImageException.class, "L1 table is too small");
    }

    // size_to_l1(size) > INT_MAX: "Image is too big" (EFBIG). 512-byte clusters map 32 KiB per L1 entry.
    @ParameterizedTest
    @ValueSource(longs = {1L << 62, Long.MAX_VALUE})
    void virtualSizeNeedingMoreThanIntMaxL1EntriesIsTooBig(long size) throws IOException {
        Path image = create(dir.resolve("small.qcow2"), CreateOptions.defaults(1 << 20).withClusterSize(512));
        putLong(image, SIZE, size);
        assertHeaderRejected(image, ImageTooLargeException.class, "Image is too big");
    }

    // A size that is negative as int64 is far beyond what any L1 table can map.
    @ParameterizedTest
    @ValueSource(longs = {-1L, Long.MIN_VALUE, -512L})
    void negativeVirtualSizeIsTooBig(long size) throws IOException {
        Path image = image();
        putLong(image, SIZE, size);
        assertHeaderRejected(image, ImageTooLargeException.class, "Image is too big");
    }

    // The largest size one L1 entry maps still opens (the edge of "L1 table is too small").
    @Test
    void virtualSizeExactlyFillingTheL1TableOpens() throws IOException {
        Path image = image();
        putLong(image, SIZE, 512L << 20);
        Header h = ImagePoker.header(image);
        assertEquals(1, h.l1Size());
        assertArrayEquals(new byte[512], ImagePoker.readGuest(image, (512L << 20) - 512, 512));
    }

    @ParameterizedTest
    @ValueSource(longs = {4 * CLUSTER + 8, 4 * CLUSTER - 512, 0xffffffffffff0000L})
    void misalignedOrNegativeL1OffsetIsInvalid(long offset) throws IOException {
        Path image = image();
        putLong(image, L1_TABLE_OFFSET, offset);
        assertHeaderRejected(image, CorruptImageException.class, "Active L1 table offset invalid");
    }

    // qcow2_validate_table: offset + l1_size * 8 > INT64_MAX.
    @Test
    void l1OffsetPlusSizeOverflowingInt64IsInvalid() throws IOException {
        Path image = image();
        putInt(image, L1_SIZE, 8192);
        putLong(image, L1_TABLE_OFFSET, 0x7fffffffffff0000L);
        assertHeaderRejected(image, CorruptImageException.class, "Active L1 table offset invalid");
    }

    // QEMU validates the L1 offset even when l1_size is 0 ("Active L1 table offset invalid" on an empty disk).
    @Test
    void misalignedL1OffsetOfEmptyTableIsInvalid() throws IOException {
        Path image = create(dir.resolve("empty.qcow2"), CreateOptions.defaults(0));
        assertEquals(0, ImagePoker.header(image).l1Size());
        putLong(image, L1_TABLE_OFFSET, 3 * CLUSTER + 1);
        assertHeaderRejected(image, CorruptImageException.class, "Active L1 table offset invalid");
    }

    @Test
    void l1TableAtOffsetZeroIsInvalid() throws IOException {
        Path image = image();
        putLong(image, L1_TABLE_OFFSET, 0);
        assertHeaderRejected(image, CorruptImageException.class, "Active L1 table offset invalid: 0");
    }

    @Test
    void l1TablePastEndOfFileIsRejected() throws IOException {
        Path image = image();
        putLong(image, L1_TABLE_OFFSET, 100 * CLUSTER);
        assertHeaderRejected(image, CorruptImageException.class,
                "Active L1 table at offset 0x640000 (8 bytes) extends past the end of the file");
    }
}
