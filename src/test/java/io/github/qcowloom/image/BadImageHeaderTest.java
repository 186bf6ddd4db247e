package io.github.qcowloom.image;

import static io.github.qcowloom.format.HeaderField.BACKING_FILE_OFFSET;
import static io.github.qcowloom.format.HeaderField.BACKING_FILE_SIZE;
import static io.github.qcowloom.format.HeaderField.CLUSTER_BITS;
import static io.github.qcowloom.format.HeaderField.HEADER_LENGTH;
import static io.github.qcowloom.format.HeaderField.MAGIC;
import static io.github.qcowloom.format.HeaderField.VERSION;
import static io.github.qcowloom.image.ImagePoker.assertHeaderRejected;
import static io.github.qcowloom.image.ImagePoker.create;
import static io.github.qcowloom.image.ImagePoker.putInt;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static io.github.qcowloom.image.ImagePoker.truncate;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.Header;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The fixed header fields QEMU's qcow2_do_open checks before anything else: magic, version, cluster_bits,
 * header_length and the backing file name's place in cluster 0 (qcow2.md §1 "Limits enforced at open";
 * CVE-2014-0144 "Check header_length", "Check backing_file_offset"; 2014 "Fix backing file name length check").
 */
class BadImageHeaderTest {
    @TempDir
    Path dir;

    private Path image() throws IOException {
        return create(dir.resolve("bad.qcow2"));
    }

    // The unpoked image is valid, so each failure below is the poke's doing.
    @Test
    void baselineImageOpens() throws IOException {
        Path image = image();
        assertArrayEquals(new byte[512], ImagePoker.readGuest(image, 0, 512));
    }

    // qcow2_do_open: "Image is not in qcow2 format".
    @Test
    void badMagicIsNotQcow2() throws IOException {
        Path image = image();
        putInt(image, MAGIC, 0x514649fa);
        assertHeaderRejected(image, CorruptImageException.class, "Image is not in qcow2 format");
    }

    // A file that ends inside its header reads zeroes after its end, as QEMU reads it; what is refused then is
    // refused in QEMU's words (qemu-img info -f qcow2 of the truncated file).
    @ParameterizedTest
    @CsvSource({"0, false, Image is not in qcow2 format", "4, true, Unsupported qcow2 version 0",
        "8, false, Unsupported cluster size: 2^0", "71, false, qcow2 header too short",
        "100, false, qcow2 header too short"})
    void aFileEndingInsideItsHeaderIsRefusedAsQemuRefusesIt(int length, boolean unsupported, String message)
            throws IOException {
        Path image = image();
        truncate(image, length);
        if (unsupported) {
            assertHeaderRejected(image, UnsupportedFeatureException.class, message);
        } else {
            assertHeaderRejected(image, CorruptImageException.class, message);
        }
    }

    // qcow2_do_open: "Unsupported qcow2 version %u" (ENOTSUP).
    @ParameterizedTest
    @ValueSource(ints = {0, 1, 4, -1})
    void versionsOtherThanTwoAndThreeAreUnsupported(int version) throws IOException {
        Path image = image();
        putInt(image, VERSION, version);
        UnsupportedFeatureException e = assertHeaderRejected(image, UnsupportedFeatureException.class,
                "Unsupported qcow2 version " + Integer.toUnsignedString(version));
        assertEquals("qcow2 version " + Integer.toUnsignedString(version), e.feature());
    }

    // qcow2_do_open: cluster_bits must lie in [9, 21], "Unsupported cluster size: 2^%u".
    @ParameterizedTest
    @ValueSource(ints = {0, 8, 22, 63, 64, 0x7fffffff, -1})
    void clusterBitsOutsideNineToTwentyOneAreRejected(int bits) throws IOException {
        Path image = image();
        putInt(image, CLUSTER_BITS, bits);
        assertHeaderRejected(image, CorruptImageException.class,
                "Unsupported cluster size: 2^" + Integer.toUnsignedString(bits));
    }

    // CVE-2014-0144: a v3 header_length below 104 is "qcow2 header too short".
    @ParameterizedTest
    @ValueSource(ints = {0, 72, 103})
    void v3HeaderLengthBelow104IsTooShort(int length) throws IOException {
        Path image = image();
        putInt(image, HEADER_LENGTH, length);
        assertHeaderRejected(image, CorruptImageException.class, "qcow2 header too short");
    }

    // CVE-2014-0144: header_length above the cluster size, "qcow2 header exceeds cluster size".
    @ParameterizedTest
    @ValueSource(ints = {65537, 1 << 30, -1})
    void v3HeaderLengthAboveClusterSizeIsRejected(int length) throws IOException {
        Path image = image();
        putInt(image, HEADER_LENGTH, length);
        assertHeaderRejected(image, CorruptImageException.class, "qcow2 header exceeds cluster size");
    }

    // A header_length within the cluster but past the end of a short file must not be read past the end.
    @Test
    void v3HeaderLengthPastEndOfFileIsRejected() throws IOException {
        Path image = image();
        truncate(image, 4096);
        putInt(image, HEADER_LENGTH, 8192);
        assertHeaderRejected(image, CorruptImageException.class, "header extends past the end of the file");
    }

    // CVE-2014-0144 "Check backing_file_offset": "Invalid backing file offset".
    @ParameterizedTest
    @ValueSource(longs = {65537, 1L << 40, -1L, Long.MIN_VALUE})
    void backingFileOffsetPastClusterZeroIsRejected(long offset) throws IOException {
        Path image = image();
        putLong(image, BACKING_FILE_OFFSET, offset);
        putInt(image, BACKING_FILE_SIZE, 4);
        assertHeaderRejected(image, CorruptImageException.class, "Invalid backing file offset");
    }

    // 2014 "Fix backing file name length check": at most 1023 bytes, "Backing file name too long".
    @ParameterizedTest
    @ValueSource(ints = {1024, 65535, 0x7fffffff, -1})
    void backingFileNameLongerThan1023IsRejected(int size) throws IOException {
        Path image = image();
        putLong(image, BACKING_FILE_OFFSET, 4096);
        putInt(image, BACKING_FILE_SIZE, size);
        assertHeaderRejected(image, CorruptImageException.class, "Backing file name too long");
    }

    // ... and at most cluster_size - backing_file_offset: the name must end inside cluster 0.
    @Test
    void backingFileNameCrossingTheEndOfClusterZeroIsRejected() throws IOException {
        Path image = image();
        putLong(image, BACKING_FILE_OFFSET, 65536 - 100);
        putInt(image, BACKING_FILE_SIZE, 101);
        assertHeaderRejected(image, CorruptImageException.class, "Backing file name too long");
    }

    // QEMU treats an empty backing file name as no backing file: unallocated clusters read as zeroes.
    @Test
    void emptyBackingFileNameMeansNoBackingFile() throws IOException {
        Path image = image();
        putLong(image, BACKING_FILE_OFFSET, 4096);
        putInt(image, BACKING_FILE_SIZE, 0);
        assertNull(ImagePoker.header(image).backingFile());
        assertArrayEquals(new byte[4096], ImagePoker.readGuest(image, 0, 4096));
    }

    // The checks hold for v2 headers too (72 bytes, no header_length field).
    @Test
    void v2ImageWithBackingNameTooLongIsRejected() throws IOException {
        Path image = create(dir.resolve("v2.qcow2"), CreateOptions.defaults(1 << 20).withVersion(2));
        Header h = ImagePoker.header(image);
        assertEquals(2, h.version());
        putLong(image, BACKING_FILE_OFFSET, 512);
        putInt(image, BACKING_FILE_SIZE, 2000);
        assertHeaderRejected(image, CorruptImageException.class, "Backing file name too long");
    }
}
