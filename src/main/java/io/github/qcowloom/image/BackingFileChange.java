package io.github.qcowloom.image;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.format.Limits;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Names another backing file in a qcow2 image, or none (QEMU's bdrv_change_backing_file and
 * qcow2_change_backing_file): the header's backing file name and its backing format extension, rewritten in cluster 0
 * as qcow2_update_header lays it out ({@link HeaderRewrite}), then synced. Nothing is copied: whatever reads differently through the new
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

        public RefusedException(Refusal refusal, String message) {
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
        HeaderRewrite.rewrite(image, locking, header -> {
            if (name != null && header.dataFileRaw()) {
                throw new RefusedException(Refusal.INVALID,
                        "An image whose external data file is raw (data_file_raw) cannot have a backing file");
            }
            List<HeaderExtension> extensions = new ArrayList<>(header.extensions().stream()
                    .filter(e -> e.type() != HeaderExtension.BACKING_FORMAT).toList());
            if (backingFormat != null) {
                extensions.add(new HeaderExtension(HeaderExtension.BACKING_FORMAT,
                        backingFormat.getBytes(StandardCharsets.UTF_8)));
            }
            return header.withBackingFile(backingFile, extensions);
        });
    }
}
