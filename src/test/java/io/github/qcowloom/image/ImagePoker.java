package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.Limits;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Builds malformed images for the BadImage* tests: a valid image made by {@link ImageCreator}, then big-endian
 * fields poked at the header offsets of {@link HeaderField} (qcow2.md §1). Also the assertions those tests share.
 */
final class ImagePoker {
    private ImagePoker() {
    }

    /** A valid image at {@code path} made as qemu-img create would make it. */
    static Path create(Path path, CreateOptions options) throws IOException {
        ImageCreator.create(path, options);
        return path;
    }

    /**
     * A valid image whose every guest cluster maps to a host cluster (metadata preallocation, so reading a poked
     * data cluster reads the pokes), with every subcluster of an extended-L2 image marked allocated: qemu-img's
     * preallocation leaves the bitmaps 0, which would read zeroes whatever the clusters hold.
     */
    static Path createMapped(Path path, CreateOptions options) throws IOException {
        create(path, options.withPreallocation("metadata"));
        Header h = header(path);
        if (h.extendedL2()) {
            long clusters = (h.size() + h.clusterSize() - 1) / h.clusterSize();
            long perTable = h.clusterSize() / h.l2EntrySize();
            for (long c = 0; c < clusters; c++) {
                long at = l2Offset(path, (int) (c / perTable)) + (c % perTable) * h.l2EntrySize();
                putLong(path, at + 8, L2Entry.BITMAP_ALLOC_MASK);
            }
        }
        return path;
    }

    /** A valid v3 image of 1 MiB with QEMU's defaults (64 KiB clusters). */
    static Path create(Path path) throws IOException {
        return create(path, CreateOptions.defaults(1 << 20));
    }

    static void write(Path image, long offset, byte[] data) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.seek(offset);
            f.write(data);
        }
    }

    static void putLong(Path image, long offset, long value) throws IOException {
        byte[] b = new byte[8];
        Bytes.putLong(b, 0, value);
        write(image, offset, b);
    }

    static void putInt(Path image, long offset, int value) throws IOException {
        byte[] b = new byte[4];
        Bytes.putInt(b, 0, value);
        write(image, offset, b);
    }

    static void putShort(Path image, long offset, int value) throws IOException {
        byte[] b = new byte[2];
        Bytes.putShort(b, 0, value);
        write(image, offset, b);
    }

    static void putByte(Path image, long offset, int value) throws IOException {
        write(image, offset, new byte[] {(byte) value});
    }

    /** Pokes a 4-byte header field. */
    static void putInt(Path image, HeaderField field, int value) throws IOException {
        putInt(image, widthChecked(field, 4), value);
    }

    /** Pokes an 8-byte header field. */
    static void putLong(Path image, HeaderField field, long value) throws IOException {
        putLong(image, widthChecked(field, 8), value);
    }

    /** Pokes a 1-byte header field. */
    static void putByte(Path image, HeaderField field, int value) throws IOException {
        putByte(image, widthChecked(field, 1), value);
    }

    /** Reads an 8-byte header field. */
    static long getLong(Path image, HeaderField field) throws IOException {
        return getLong(image, widthChecked(field, 8));
    }

    /** The field's offset, after checking that the test pokes as many bytes as the field has. */
    private static long widthChecked(HeaderField field, int width) {
        if (field.width() != width) {
            throw new IllegalArgumentException(field.specName() + " is " + field.width() + " bytes, not " + width);
        }
        return field.offset();
    }

    static byte[] read(Path image, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            f.seek(offset);
            f.readFully(b);
        }
        return b;
    }

    static long getLong(Path image, long offset) throws IOException {
        return Bytes.getLong(read(image, offset, 8), 0);
    }

    static void truncate(Path image, long length) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(length);
        }
    }

    /** Appends {@code data} at the next cluster boundary at or after the end of the file; returns its offset. */
    static long appendCluster(Path image, byte[] data) throws IOException {
        long clusterSize = header(image).clusterSize();
        long offset = Bytes.alignUp(Files.size(image), clusterSize);
        write(image, offset, data);
        truncate(image, Bytes.alignUp(offset + data.length, clusterSize));
        return offset;
    }

    /** The image's header, read and validated as an open does. */
    static Header header(Path image) throws IOException {
        return parseHeader(image);
    }

    /** Rewrites cluster 0 from {@code header} (extensions and backing name placed as QEMU places them). */
    static void rewriteHeader(Path image, Header header) throws IOException {
        byte[] encoded = header.encode();
        byte[] cluster = new byte[(int) header.clusterSize()];
        System.arraycopy(encoded, 0, cluster, 0, encoded.length);
        write(image, 0, cluster);
    }

    /** A copy of {@code h} with other extensions (in the given order). */
    static Header withExtensions(Header h, List<HeaderExtension> extensions) {
        return new Header(h.version(), h.backingFileOffset(), h.backingFileSize(), h.clusterBits(), h.size(),
                h.cryptMethod(), h.l1Size(), h.l1TableOffset(), h.refcountTableOffset(), h.refcountTableClusters(),
                h.nbSnapshots(), h.snapshotsOffset(), h.incompatibleFeatures(), h.compatibleFeatures(),
                h.autoclearFeatures(), h.refcountOrder(), h.headerLength(), h.compressionType(), extensions,
                h.backingFile());
    }

    /** Rewrites the image's cluster 0 with {@code extensions} instead of the ones it has. */
    static void replaceExtensions(Path image, HeaderExtension... extensions) throws IOException {
        rewriteHeader(image, withExtensions(header(image), List.of(extensions)));
    }

    /** Reads cluster 0 as Qcow2Image does (peek at the cluster size, then the cluster) and parses it. */
    static Header parseHeader(Path image) throws IOException {
        long length = Files.size(image);
        byte[] first = read(image, 0, (int) Math.min(length, Limits.V3_HEADER_LENGTH));
        int clusterBits = Header.peekClusterBits(first);
        return Header.parse(read(image, 0, (int) Math.min(length, 1L << clusterBits)), length);
    }

    /** Host offset of the L2 table of L1 entry {@code index}. */
    static long l2Offset(Path image, int index) throws IOException {
        return L1Entry.l2Offset(getLong(image, header(image).l1TableOffset() + 8L * index));
    }

    /** File offset of the L2 entry (of {@code entrySize} bytes) for guest cluster {@code cluster} in L2 table 0. */
    static long l2EntryOffset(Path image, int cluster) throws IOException {
        return l2Offset(image, 0) + (long) cluster * header(image).l2EntrySize();
    }

    /** Opens read-only (default options) and reads {@code length} bytes at {@code offset}. */
    static byte[] readGuest(Path image, long offset, int length) throws IOException {
        return readGuest(image, OpenOptions.readOnlyDefaults(), offset, length);
    }

    static byte[] readGuest(Path image, OpenOptions options, long offset, int length) throws IOException {
        try (Qcow2Image img = Qcow2Image.open(image, options)) {
            byte[] b = new byte[length];
            img.read(offset, ByteBuffer.wrap(b));
            return b;
        }
    }

    /**
     * Asserts that a read-only open fails with exactly {@code type} and a message containing {@code expected}.
     */
    static <T extends ImageException> T assertOpenFails(Path image, Class<T> type, String expected) {
        T e = assertThrows(type, () -> {
            try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
                img.size();
            }
        });
        return checked(e, type, expected);
    }

    /**
     * Asserts that both {@link Header#parse} on cluster 0 and a read-only open fail with exactly {@code type} and
     * a message containing {@code expected}: the check lives in the format layer and the open relies on it.
     */
    static <T extends ImageException> T assertHeaderRejected(Path image, Class<T> type, String expected) {
        T parsed = assertThrows(type, () -> parseHeader(image));
        checked(parsed, type, expected);
        T opened = assertOpenFails(image, type, expected);
        assertEquals("Could not open '" + image + "': " + parsed.getMessage(), opened.getMessage(),
                "open reports what Header.parse reports, in qemu-img's context");
        return opened;
    }

    /** Asserts that reading {@code length} bytes at {@code offset} fails with {@code type} and {@code expected}. */
    static <T extends ImageException> T assertReadFails(Path image, long offset, int length, Class<T> type,
            String expected) {
        T e = assertThrows(type, () -> readGuest(image, offset, length));
        return checked(e, type, expected);
    }

    private static <T extends ImageException> T checked(T e, Class<T> type, String expected) {
        assertEquals(type, e.getClass(), () -> "exception type; message: " + e.getMessage());
        assertTrue(e.getMessage().contains(expected),
                () -> "message should contain \"" + expected + "\" but was: " + e.getMessage());
        return e;
    }
}
