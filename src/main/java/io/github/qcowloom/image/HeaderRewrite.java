package io.github.qcowloom.image;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.LockPermissions;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The first cluster of a qcow2 image, laid out as QEMU's qcow2_update_header lays it out: header fields, the
 * extensions in QEMU's order (backing format, external data file name, QEMU's feature-name table where qemu-img
 * 7.2 writes one, the bitmaps, then the others as found), the end marker and the backing file name; the rest of the
 * cluster zeroes. {@link #rewrite} changes it in an image that is not open elsewhere (its lock is taken for writing).
 */
final class HeaderRewrite {
    private HeaderRewrite() {
    }

    /** A change of the header; may refuse by throwing. */
    @FunctionalInterface
    interface Change {
        Header apply(Header current) throws IOException;
    }

    /**
     * Reads the header of {@code image}, applies {@code change} and writes the result in QEMU's layout, then syncs.
     *
     * @throws BackingFileChange.RefusedException (NO_SPACE) where the result does not fit in the first cluster
     */
    static void rewrite(Path image, ImageLocking locking, Change change) throws IOException {
        try (FileStorage file = openForEdit(image, locking)) {
            rewrite(file, change);
        }
    }

    /** {@link #rewrite(Path, ImageLocking, Change)} of the image in {@code file}, which the caller holds. */
    static void rewrite(Storage file, Change change) throws IOException {
        Header header = ImageMetadata.readHeader(file);
        ByteBuffer encoded;
        try {
            encoded = cluster0(change.apply(header));
        } catch (CorruptImageException e) {
            throw new BackingFileChange.RefusedException(BackingFileChange.Refusal.NO_SPACE, e.getMessage());
        }
        file.writeDurably(encoded, 0);
    }

    /**
     * Opens {@code image}, which no other process may have open for writing (its lock is taken for writing), for
     * an edit of its metadata with the image closed; refuses an image marked corrupt.
     */
    static FileStorage openForEdit(Path image, ImageLocking locking) throws IOException {
        FileStorage file;
        try {
            file = FileStorage.open(image, false, false, StorageBackend.FILECHANNEL,
                    LockPermissions.forImage(locking, false));
        } catch (ImageLockedException e) {
            throw e.withContext("Could not open '" + image + "': ");
        }
        try {
            if (ImageMetadata.readHeader(file).corrupt()) {
                throw new CorruptImageException("qcow2: Image is corrupt; cannot be opened read/write (open it"
                        + " read-only, or repair it with check -r all)");
            }
            return file;
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /**
     * The header of an image whose tables are about to be edited with no driver open on it. Refused if dirty: its
     * refcounts may be behind its tables until a read-write open repairs them (amend's first step does).
     */
    static Header readUnopenedHeader(Storage file) throws IOException {
        Header header = ImageMetadata.readHeader(file);
        if (header.dirty()) {
            throw new ImageException("The image is dirty (its refcounts may be behind): open it for writing, which"
                    + " repairs it, and amend again");
        }
        return header;
    }

    /**
     * The first cluster for {@code h}, in QEMU's layout: the header, its extensions and backing file name, then
     * zeroes.
     *
     * @throws CorruptImageException if they do not fit in the cluster
     */
    static ByteBuffer cluster0(Header h) throws CorruptImageException {
        return ByteBuffer.allocate((int) h.clusterSize()).put(inQemuLayout(h).encode()).clear();
    }

    /**
     * {@code h} with its extensions in QEMU's order, and with QEMU's feature-name table for a version 3 image
     * where qemu-img 7.2 writes one: where it fits in the first cluster, with clusters of more than 4 KiB (seen).
     */
    static Header inQemuLayout(Header h) {
        List<HeaderExtension> ordered = new ArrayList<>();
        for (int type : new int[] {HeaderExtension.BACKING_FORMAT, HeaderExtension.DATA_FILE,
                HeaderExtension.FDE_POINTER}) {
            h.extension(type).ifPresent(ordered::add);
        }
        List<HeaderExtension> others = new ArrayList<>(h.extension(HeaderExtension.BITMAPS).stream().toList());
        others.addAll(h.extensions().stream().filter(e -> e.type() != HeaderExtension.BACKING_FORMAT
                && e.type() != HeaderExtension.DATA_FILE && e.type() != HeaderExtension.FDE_POINTER
                && e.type() != HeaderExtension.FEATURE_TABLE && e.type() != HeaderExtension.BITMAPS).toList());
        HeaderExtension table = new HeaderExtension(HeaderExtension.FEATURE_TABLE,
                Header.encodeFeatureTable(Features.QEMU_NAMES));
        long used = h.headerLength() + 8 + table.encodedLength()
                + ordered.stream().mapToLong(HeaderExtension::encodedLength).sum()
                + others.stream().mapToLong(HeaderExtension::encodedLength).sum()
                + (h.backingFile() == null ? 0 : h.backingFile().getBytes(StandardCharsets.UTF_8).length);
        if (h.version() == 3 && h.clusterBits() > 12 && used <= h.clusterSize()) {
            ordered.add(table);
        }
        ordered.addAll(others);
        return h.withBackingFile(h.backingFile(), ordered);
    }
}
