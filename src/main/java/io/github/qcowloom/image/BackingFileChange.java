package io.github.qcowloom.image;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.LockPermissions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Names another backing file in a qcow2 image, or none (QEMU's bdrv_change_backing_file and
 * qcow2_change_backing_file): the header's backing file name and its backing format extension, rewritten in cluster 0
 * as qcow2_update_header lays it out, then synced. Nothing is copied: whatever reads differently through the new
 * backing file is the caller's to write into the image first ({@code rebase}). The image is opened for writing here,
 * under its lock, so it must not be open elsewhere.
 */
public final class BackingFileChange {
    private BackingFileChange() {
    }

    /** Why QEMU refuses a change, in the words of its error number. */
    public enum Refusal {
        /** EINVAL: a name too long, a format without a name, or a backing file for a raw external data file. */
        INVALID("Invalid argument"),
        /** ENOSPC: the header, its extensions and the name would not fit in the first cluster. */
        NO_SPACE("No space left in the file header");

        private final String qemuWords;

        Refusal(String qemuWords) {
            this.qemuWords = qemuWords;
        }

        /** What qemu-img prints after "Could not change the backing file to 'NAME': ". */
        public String qemuWords() {
            return qemuWords;
        }
    }

    /** A change QEMU would refuse; the image is left as it was. */
    public static final class RefusedException extends ImageException {
        private final Refusal refusal;

        RefusedException(Refusal refusal, String message) {
            super(message);
            this.refusal = refusal;
        }

        public Refusal refusal() {
            return refusal;
        }
    }

    /**
     * Makes {@code image} name {@code backingFile} (as given: a relative name is found beside the image when it is
     * opened) with {@code backingFormat}, or no backing file when {@code backingFile} is null.
     *
     * @throws RefusedException where QEMU refuses the change
     */
    public static void change(Path image, String backingFile, String backingFormat, ImageLocking locking)
            throws IOException {
        if (backingFormat != null && backingFile == null) {
            throw new RefusedException(Refusal.INVALID, "A backing format needs a backing file");
        }
        byte[] name = backingFile == null ? null : backingFile.getBytes(StandardCharsets.UTF_8);
        if (name != null && name.length > Limits.MAX_BACKING_NAME) {
            throw new RefusedException(Refusal.INVALID, "A backing file name is at most " + Limits.MAX_BACKING_NAME
                    + " bytes long, not " + name.length);
        }
        FileStorage file;
        try {
            file = FileStorage.open(image, false, false, StorageBackend.FILECHANNEL,
                    LockPermissions.forImage(locking, false));
        } catch (ImageLockedException e) {
            throw e.withContext("Could not open '" + image + "': ");
        }
        try (file) {
            Header header = ImageMetadata.readHeader(file);
            if (header.corrupt()) {
                throw new CorruptImageException(
                        "qcow2: Image is corrupt; cannot be opened read/write (open it read-only, or repair it with check -r all)");
            }
            if (name != null && header.dataFileRaw()) {
                throw new RefusedException(Refusal.INVALID,
                        "An image whose external data file is raw (data_file_raw) cannot have a backing file");
            }
            List<HeaderExtension> extensions = new ArrayList<>();
            if (backingFormat != null) { // first, where qcow2_update_header writes it
                extensions.add(new HeaderExtension(HeaderExtension.BACKING_FORMAT,
                        backingFormat.getBytes(StandardCharsets.UTF_8)));
            }
            for (HeaderExtension e : header.extensions()) {
                if (e.type() != HeaderExtension.BACKING_FORMAT) {
                    extensions.add(e);
                }
            }
            Header changed = new Header(header.version(), 0, 0, header.clusterBits(), header.size(),
                    header.cryptMethod(), header.l1Size(), header.l1TableOffset(), header.refcountTableOffset(),
                    header.refcountTableClusters(), header.nbSnapshots(), header.snapshotsOffset(),
                    header.incompatibleFeatures(), header.compatibleFeatures(), header.autoclearFeatures(),
                    header.refcountOrder(), header.headerLength(), header.compressionType(), extensions, backingFile);
            byte[] encoded;
            try {
                encoded = changed.encode();
            } catch (CorruptImageException e) {
                throw new RefusedException(Refusal.NO_SPACE, e.getMessage());
            }
            // The whole cluster, as QEMU writes it: nothing of a longer old name is left behind the new one.
            ByteBuffer cluster = ByteBuffer.allocate((int) header.clusterSize()).put(encoded).clear();
            file.write(cluster, 0);
            file.flush();
        }
    }
}
