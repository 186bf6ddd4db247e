package io.github.qcowloom.image;

import static io.github.qcowloom.format.HeaderField.BACKING_FILE_OFFSET;
import static io.github.qcowloom.format.HeaderField.HEADER_LENGTH;
import static io.github.qcowloom.image.ImagePoker.assertHeaderRejected;
import static io.github.qcowloom.image.ImagePoker.create;
import static io.github.qcowloom.image.ImagePoker.putInt;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static io.github.qcowloom.image.ImagePoker.replaceExtensions;
import static io.github.qcowloom.image.ImagePoker.truncate;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.format.HeaderField;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Header extensions between header_length and the backing file name (or the end of cluster 0), as QEMU's
 * qcow2_read_extensions reads them: "Header extension too large" when one overruns that area (CVE-2014-0144's
 * "huge extension area"), and the per-type length rules of qcow2.md §1.
 */
class BadImageExtensionTest {
    /** Where ImageCreator puts the first extension of a v3 image: right after the 112-byte header. */
    private static final int FIRST_EXTENSION = 112;

    @TempDir
    Path dir;

    private Path image() throws IOException {
        return create(dir.resolve("bad.qcow2"));
    }

    // The first extension of a fresh v3 image is QEMU's feature-name table: the pokes below hit a real one.
    @Test
    void freshImageStartsWithTheFeatureNameTable() throws IOException {
        Header h = ImagePoker.header(image());
        assertEquals(HeaderExtension.FEATURE_TABLE, h.extensions().get(0).type());
    }

    // qcow2_read_extensions: ext.len > end_offset - offset.
    @ParameterizedTest
    @ValueSource(ints = {65536 - FIRST_EXTENSION - 8 + 1, 0x7fffffff, 0xfffffff8})
    void extensionLongerThanClusterZeroIsTooLarge(int length) throws IOException {
        Path image = image();
        putInt(image, FIRST_EXTENSION + 4, length);
        assertHeaderRejected(image, CorruptImageException.class, "Header extension too large");
    }

    // qcow2_read_extensions: the 8-byte extension header itself must fit before end_offset.
    @Test
    void extensionHeaderCrossingTheEndOfClusterZeroIsTooLarge() throws IOException {
        Path image = image();
        putInt(image, HEADER_LENGTH, 65536 - 4);
        assertHeaderRejected(image, CorruptImageException.class, "Header extension too large");
    }

    // With a backing file name, the extension area ends where the name starts (ext_end = backing_file_offset).
    @Test
    void extensionOverlappingTheBackingFileNameIsTooLarge() throws IOException {
        Path image = image();
        putLong(image, BACKING_FILE_OFFSET, FIRST_EXTENSION + 64);
        putInt(image, HeaderField.BACKING_FILE_SIZE, 3);
        // The feature-name table (8 entries of 48 bytes) runs far past offset 176.
        assertHeaderRejected(image, CorruptImageException.class, "Header extension too large");
    }

    // An extension inside cluster 0 but past the end of a short file is not read past the end.
    @Test
    void extensionPastEndOfFileIsRejected() throws IOException {
        Path image = image();
        truncate(image, 400);
        assertHeaderRejected(image, CorruptImageException.class, "extends past the end of the file");
    }

    // qcow2_read_extensions: the backing format name must be shorter than 16 bytes.
    @ParameterizedTest
    @ValueSource(ints = {16, 17, 1000})
    void backingFormatOf16BytesOrMoreIsRejected(int length) throws IOException {
        Path image = image();
        replaceExtensions(image, new HeaderExtension(HeaderExtension.BACKING_FORMAT, new byte[length]));
        assertHeaderRejected(image, CorruptImageException.class,
                "ERROR: ext_backing_format: len=" + length + " too large (>=16)");
    }

    @Test
    void backingFormatOf15BytesIsAccepted() throws IOException {
        Path image = image();
        byte[] name = "qcow2-fifteen-b".getBytes(StandardCharsets.US_ASCII);
        replaceExtensions(image, new HeaderExtension(HeaderExtension.BACKING_FORMAT, name));
        assertEquals("qcow2-fifteen-b", ImagePoker.header(image).backingFormat().orElseThrow());
        assertArrayEquals(new byte[512], ImagePoker.readGuest(image, 0, 512));
    }

    // qcow2_read_extensions: the bitmaps extension is exactly 24 bytes ("bitmaps_ext: Invalid extension length").
    @ParameterizedTest
    @ValueSource(ints = {0, 16, 32})
    void bitmapsExtensionOfWrongLengthIsRejected(int length) throws IOException {
        Path image = image();
        replaceExtensions(image, new HeaderExtension(HeaderExtension.BITMAPS, new byte[length]));
        assertHeaderRejected(image, CorruptImageException.class, "bitmaps_ext: Invalid extension length");
    }

    // qcow2_read_extensions: the full-disk-encryption pointer belongs to LUKS images only...
    @Test
    void encryptionHeaderPointerInUnencryptedImageIsRejected() throws IOException {
        Path image = image();
        replaceExtensions(image, new HeaderExtension(HeaderExtension.FDE_POINTER, new byte[16]));
        assertHeaderRejected(image, CorruptImageException.class,
                "CRYPTO header extension only expected with LUKS encryption method");
    }

    // ... and is exactly 16 bytes (checked before the LUKS header it points to is read).
    @Test
    void encryptionHeaderPointerOfWrongLengthIsRejected() throws IOException {
        Path image = image();
        replaceExtensions(image, new HeaderExtension(HeaderExtension.FDE_POINTER, new byte[8]));
        putInt(image, HeaderField.CRYPT_METHOD, 2);
        assertHeaderRejected(image, CorruptImageException.class,
                "CRYPTO header extension size 8, but expected size 16");
    }

    /** The bitmaps extension: nb_bitmaps, reserved32, bitmap_directory_size, bitmap_directory_offset. */
    private static HeaderExtension bitmaps(int count, int reserved, long directorySize, long directoryOffset) {
        byte[] b = new byte[24];
        Bytes.putInt(b, 0, count);
        Bytes.putInt(b, 4, reserved);
        Bytes.putLong(b, 8, directorySize);
        Bytes.putLong(b, 16, directoryOffset);
        return new HeaderExtension(HeaderExtension.BITMAPS, b);
    }

    // With autoclear bit 0 set, QEMU reads the bitmaps extension and checks each field (observed with 7.2).
    @ParameterizedTest
    @CsvSource({
        "1, 5, 64, 196608, bitmaps_ext: Reserved field is not zero",
        "65536, 0, 64, 196608, 'bitmaps_ext: Image has 65536 bitmaps, exceeding the QEMU supported maximum of 65535'",
        "0, 0, 0, 196608, found bitmaps extension with zero bitmaps",
        "1, 0, 64, 196616, bitmaps_ext: invalid bitmap directory offset",
        "1, 0, 67107841, 196608, bitmaps_ext: bitmap directory size (67107841) exceeds the maximum supported size "
                + "(67107840)",
        "1, 0, -1, 196608, bitmaps_ext: bitmap directory size (18446744073709551615) exceeds",
    })
    void badBitmapsExtensionIsRejected(int count, int reserved, long size, long offset, String message)
            throws IOException {
        Path image = image();
        replaceExtensions(image, bitmaps(count, reserved, size, offset));
        putLong(image, HeaderField.AUTOCLEAR_FEATURES, Features.AUTOCLEAR_BITMAPS);
        assertHeaderRejected(image, CorruptImageException.class, message);
    }

    // Without the autoclear bit the extension is stale (QEMU drops it with a warning) and its fields are not read.
    @Test
    void bitmapsExtensionWithoutAutoclearBitIsNotRead() throws IOException {
        Path image = image();
        replaceExtensions(image, bitmaps(0, 5, -1, 1));
        assertArrayEquals(new byte[512], ImagePoker.readGuest(image, 0, 512));
    }

    @Test
    void validBitmapsExtensionIsAccepted() throws IOException {
        Path image = image();
        replaceExtensions(image, bitmaps(65535, 0, 67107840, 196608));
        putLong(image, HeaderField.AUTOCLEAR_FEATURES, Features.AUTOCLEAR_BITMAPS);
        assertEquals(1, ImagePoker.header(image).extensions().size());
    }

    // Unknown extensions are kept verbatim and in order (QEMU rewrites them unchanged; iotest 036/031).
    @Test
    void unknownExtensionsAreKeptVerbatimInOrder() throws IOException {
        Path image = image();
        HeaderExtension a = new HeaderExtension(0x12345678, new byte[] {1, 2, 3});
        HeaderExtension b = new HeaderExtension(0x7fffffff, new byte[0]);
        HeaderExtension c = new HeaderExtension(0xdeadbeef, new byte[17]);
        replaceExtensions(image, a, b, c);
        assertEquals(List.of(a, b, c), ImagePoker.header(image).extensions());
        assertArrayEquals(new byte[512], ImagePoker.readGuest(image, 0, 512));
    }
}
