package io.github.qcowloom.image;

import static io.github.qcowloom.format.HeaderField.AUTOCLEAR_FEATURES;
import static io.github.qcowloom.format.HeaderField.COMPRESSION_TYPE;
import static io.github.qcowloom.format.HeaderField.CRYPT_METHOD;
import static io.github.qcowloom.format.HeaderField.INCOMPATIBLE_FEATURES;
import static io.github.qcowloom.format.HeaderField.REFCOUNT_ORDER;
import static io.github.qcowloom.image.ImagePoker.assertHeaderRejected;
import static io.github.qcowloom.image.ImagePoker.create;
import static io.github.qcowloom.image.ImagePoker.putByte;
import static io.github.qcowloom.image.ImagePoker.putInt;
import static io.github.qcowloom.image.ImagePoker.putLong;
import static io.github.qcowloom.image.ImagePoker.replaceExtensions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.Features.FeatureName;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Feature bits and the header fields that select a feature: unknown incompatible bits (QEMU's
 * report_unsupported_feature, iotest 036), crypt_method, refcount_order, compression_type
 * (validate_compression_type), extended L2's subcluster size and data-file-raw (qcow2.md §1).
 */
class BadImageFeatureTest {
    @TempDir
    Path dir;

    private Path image() throws IOException {
        return create(dir.resolve("bad.qcow2"));
    }

    // QCOW2_INCOMPAT_MASK is 0x1f; without a feature-name table QEMU names the bit by its mask in hex.
    @Test
    void unknownIncompatibleBitWithoutNameTableIsNamedByMask() throws IOException {
        Path image = image();
        replaceExtensions(image);
        putLong(image, INCOMPATIBLE_FEATURES, 1L << 5);
        UnsupportedFeatureException e = assertHeaderRejected(image, UnsupportedFeatureException.class,
                "Unsupported qcow2 feature(s): Unknown incompatible feature: 20");
        assertEquals("Unknown incompatible feature: 20", e.feature());
    }

    // With a feature-name table, the message carries the table's name for the unknown bit.
    @Test
    void unknownIncompatibleBitIsNamedFromTheImagesTable() throws IOException {
        Path image = image();
        byte[] table = Header.encodeFeatureTable(new FeatureName[] {
            new FeatureName(Features.TYPE_INCOMPATIBLE, 0, "dirty bit"),
            new FeatureName(Features.TYPE_COMPATIBLE, 5, "not this one"),
            new FeatureName(Features.TYPE_INCOMPATIBLE, 5, "frobnicated clusters"),
        });
        replaceExtensions(image, new HeaderExtension(HeaderExtension.FEATURE_TABLE, table));
        putLong(image, INCOMPATIBLE_FEATURES, 1L << 5);
        UnsupportedFeatureException e = assertHeaderRejected(image, UnsupportedFeatureException.class,
                "Unsupported qcow2 feature(s): frobnicated clusters");
        assertEquals("frobnicated clusters", e.feature());
    }

    // Several unknown bits: named ones by name, the rest by mask; known bits set alongside are not reported.
    @Test
    void severalUnknownBitsAreAllReported() throws IOException {
        Path image = image();
        putLong(image, INCOMPATIBLE_FEATURES, Features.INCOMPAT_DIRTY | (1L << 6) | (1L << 63));
        UnsupportedFeatureException e = assertHeaderRejected(image, UnsupportedFeatureException.class,
                "Unknown incompatible feature: 40");
        String message = e.getMessage();
        assertTrue(message.contains("Unknown incompatible feature: 8000000000000000"), message);
        assertFalse(message.contains("dirty bit"), message);
    }

    // crypt_method 1 (AES) has no header of its own: it parses as it is, and a CRYPTO header extension beside it is
    // refused (QEMU's qcow2_read_extensions); 2 (LUKS) needs one.
    @Test
    void aesHasNoLuksPointer() throws IOException {
        Path image = image();
        putInt(image, CRYPT_METHOD, 1);
        Header aes = ImagePoker.parseHeader(image);
        assertTrue(aes.encrypted() && aes.aesEncrypted() && !aes.luksEncrypted());
        replaceExtensions(image, new HeaderExtension(HeaderExtension.FDE_POINTER, new byte[16]));
        assertHeaderRejected(image, CorruptImageException.class,
                "CRYPTO header extension only expected with LUKS encryption method");
    }

    @Test
    void luksWithoutItsHeaderIsCorrupt() throws IOException {
        Path image = image();
        putInt(image, CRYPT_METHOD, 2);
        assertHeaderRejected(image, CorruptImageException.class, "Missing CRYPTO header for crypt method 2");
    }

    // QEMU: "Unsupported encryption method: %d" for anything above LUKS.
    @ParameterizedTest
    @ValueSource(ints = {3, 0x7fffffff, -1})
    void unknownEncryptionMethodIsUnsupported(int method) throws IOException {
        Path image = image();
        putInt(image, CRYPT_METHOD, method);
        assertHeaderRejected(image, UnsupportedFeatureException.class,
                "Unsupported encryption method: " + Integer.toUnsignedString(method));
    }

    // refcount_order > 6: "Reference count entry width too large; may not exceed 64 bits".
    @ParameterizedTest
    @ValueSource(ints = {7, 64, -1})
    void refcountOrderAboveSixIsRejected(int order) throws IOException {
        Path image = image();
        putInt(image, REFCOUNT_ORDER, order);
        assertHeaderRejected(image, CorruptImageException.class,
                "Reference count entry width too large; may not exceed 64 bits");
    }

    // validate_compression_type: only zlib (0) and zstd (1) exist.
    @ParameterizedTest
    @ValueSource(ints = {2, 255})
    void unknownCompressionTypeIsUnsupported(int type) throws IOException {
        Path image = image();
        putByte(image, COMPRESSION_TYPE, type);
        putLong(image, INCOMPATIBLE_FEATURES, Features.INCOMPAT_COMPRESSION);
        UnsupportedFeatureException e = assertHeaderRejected(image, UnsupportedFeatureException.class,
                "unknown compression type: " + type);
        assertEquals("compression type " + type, e.feature());
    }

    // validate_compression_type: a type other than zlib needs incompatible bit 3.
    @Test
    void zstdWithoutCompressionBitIsRejected() throws IOException {
        Path image = image();
        putByte(image, COMPRESSION_TYPE, 1);
        assertHeaderRejected(image, CorruptImageException.class,
                "Compression type incompatible feature bit must be set");
    }

    // validate_compression_type: zlib must not set incompatible bit 3.
    @Test
    void zlibWithCompressionBitIsRejected() throws IOException {
        Path image = image();
        putLong(image, INCOMPATIBLE_FEATURES, Features.INCOMPAT_COMPRESSION);
        assertHeaderRejected(image, CorruptImageException.class,
                "Compression type incompatible feature bit must not be set");
    }

    // The well-formed zstd image (type 1 with bit 3) opens.
    @Test
    void zstdWithCompressionBitOpens() throws IOException {
        Path image = create(dir.resolve("zstd.qcow2"), CreateOptions.defaults(1 << 20).withCompressionType("zstd"));
        assertEquals(1, ImagePoker.header(image).compressionType());
        assertArrayEquals(new byte[512], ImagePoker.readGuest(image, 0, 512));
    }

    // Extended L2 splits a cluster into 32 subclusters of at least 512 bytes: "Unsupported subcluster size: %d".
    @ParameterizedTest
    @ValueSource(ints = {512, 4096, 8192})
    void extendedL2WithClustersBelow16KIsRejected(int clusterSize) throws IOException {
        Path image = create(dir.resolve("small.qcow2"), CreateOptions.defaults(1 << 20).withClusterSize(clusterSize));
        putLong(image, INCOMPATIBLE_FEATURES, Features.INCOMPAT_EXTL2);
        UnsupportedFeatureException e = assertHeaderRejected(image, UnsupportedFeatureException.class,
                "Unsupported subcluster size: " + clusterSize / 32);
        assertEquals("subcluster size", e.feature());
    }

    @Test
    void extendedL2With16KClustersOpens() throws IOException {
        Path image = create(dir.resolve("ext.qcow2"),
                CreateOptions.defaults(1 << 20).withClusterSize(16384).withExtendedL2(true));
        assertArrayEquals(new byte[512], ImagePoker.readGuest(image, 0, 512));
    }

    // qcow2_do_open: the raw-external-data autoclear bit needs incompatible bit 2 ("data-file-raw requires a data file").
    @Test
    void dataFileRawWithoutDataFileIsRejected() throws IOException {
        Path image = image();
        putLong(image, AUTOCLEAR_FEATURES, Features.AUTOCLEAR_DATA_FILE_RAW);
        assertHeaderRejected(image, CorruptImageException.class, "data-file-raw requires a data file");
    }
}
