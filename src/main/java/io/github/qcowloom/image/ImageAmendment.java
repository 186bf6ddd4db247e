package io.github.qcowloom.image;

import io.github.qcowloom.api.ChainEncryption;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.OpenFailures;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnlockedKeys;
import io.github.qcowloom.crypto.LuksKeySlotChange;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.snapshot.Snapshots;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.LockPermissions;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.function.DoubleConsumer;

/**
 * qemu-img amend for a qcow2 image (QEMU 7.2's qcow2_amend_options), in its order of steps: the options are checked; a
 * version 2 image is upgraded to 3 (a snapshot table lacking version 3's extra data written anew with it); a LUKS
 * image's key slots are changed ({@link LuksKeySlotChange}); the refcount width is changed ({@link
 * RefcountWidthChange}); the data file settings and the header are written; the backing file is compared (it cannot be
 * amended: rebase changes it); lazy refcounts are switched; the virtual size is set; and a downgrade to version 2 comes
 * last ({@link VersionDowngrade}). The image is opened for writing first, which repairs it if it was left dirty, as
 * QEMU's open does; each header change is then made with the image closed ({@link HeaderRewrite}), and so are the width
 * change and the downgrade. The file is held open, with its lock, from the first step to the last ({@link HeldFile}),
 * as qemu-img holds it: no other process can open the image for writing in between.
 *
 * @param size the new virtual size, or null
 * @param compat "0.10"/"v2" or "1.1"/"v3", or null
 * @param backingFile the backing file name given (it must be the image's), or null
 * @param backingFormat the backing format given (likewise), or null
 * @param dataFile a new external data file name ("" for none), or null
 * @param dataFileRaw data_file_raw (only off can be set), or null
 * @param lazyRefcounts lazy_refcounts, or null
 * @param refcountBits refcount_bits, or null
 * @param keySlots what the encryption options ({@code encrypt.*}) change in a LUKS image's key slots, or null
 * @param force qemu-img amend's --force: key slot changes QEMU refuses without it (see {@link LuksKeySlotChange})
 */
public record ImageAmendment(Long size, String compat, String backingFile, String backingFormat, String dataFile,
        Boolean dataFileRaw, Boolean lazyRefcounts, Long refcountBits, LuksKeySlotChange keySlots, boolean force) {

    /** Amends the qcow2 image at {@code path}, opened with {@code options} (read-write). */
    public void apply(Path path, OpenOptions options) throws IOException {
        apply(path, options, done -> { });
    }

    /**
     * As {@link #apply(Path, OpenOptions)}; {@code progress} is told the fraction done, from 0 to 1, of the steps
     * that walk the image's tables (a refcount width change, a downgrade), as qemu-img amend -p shows it.
     */
    public void apply(Path path, OpenOptions options, DoubleConsumer progress) throws IOException {
        FileStorage held;
        try {
            held = FileStorage.open(path, false, options.direct(), options.tuning().storage(),
                    LockPermissions.forImage(options.locking(), false));
        } catch (ImageLockedException e) {
            throw e.withContext("Could not open '" + path + "': ");
        }
        // Each step opens the image anew: it is unlocked once, and its key kept for the steps after a key slot change.
        ChainEncryption encryption = options.encryption();
        try (held; UnlockedKeys own = encryption.unlockedKeys() == null ? new UnlockedKeys() : null) {
            apply(new HeldFile(held), path, own == null ? options
                    : options.withEncryption(encryption.rememberingKeys(own)), progress);
        }
    }

    /** The first open of the steps, its failures in qemu-img's context ("Could not open 'x': "). */
    private static Qcow2Image openForSteps(Storage file, Path path, OpenOptions options) throws IOException {
        try {
            return Qcow2Image.open(file, path.toAbsolutePath().getParent(), options.withGuestWrites(false));
        } catch (IOException e) {
            throw OpenFailures.withContext(e, "Could not open '" + path + "': ");
        }
    }

    /** The steps, each on {@code file}, which the caller holds open and locked for all of them. */
    private void apply(Storage file, Path path, OpenOptions options, DoubleConsumer progress) throws IOException {
        Path dir = path.toAbsolutePath().getParent();
        Header header;
        List<Snapshot> snapshots;
        // Read (and, if dirty, repaired) for edits of the metadata alone: the options that change no guest data then
        // leave the image's persistent bitmaps consistent; a size opens it again, for writes. What this open refuses
        // is worded in qemu-img's context; what the steps refuse after it, as qemu-img amend words it, bare.
        try (Qcow2Image image = openForSteps(file, path, options)) {
            header = image.header();
            snapshots = image.snapshots();
        }
        int oldVersion = header.version();
        int newVersion = oldVersion;
        boolean lazy = header.lazyRefcounts();
        boolean raw = header.dataFileRaw();
        long bits = header.refcountBits();
        // Checked in the order of QEMU's option list: encrypt.*, size, compat, backing, data file, lazy, width.
        if (keySlots != null && !header.luksEncrypted()) {
            throw new ImageException(header.aesEncrypted() ? "Only LUKS encryption options can be amended"
                    : "Can't amend encryption options - encryption not present");
        }
        if (compat != null) {
            newVersion = switch (compat) {
                case "0.10", "v2" -> 2;
                case "1.1", "v3" -> 3;
                default -> throw new ImageException("Unknown compatibility level " + compat);
            };
        }
        if (newVersion < oldVersion && header.encrypted()) {
            // The expansion would write zeroes into host clusters, which read as noise under the cipher (QEMU's
            // qcow2_downgrade writes them so); not emulated.
            throw new UnsupportedFeatureException("compat=0.10 of an encrypted image",
                    "Downgrading an encrypted image to compat=0.10 is not supported");
        }
        if (dataFile != null && !header.hasDataFile()) {
            throw new ImageException("data-file can only be set for images that use an external data file");
        }
        if (dataFileRaw != null) {
            if (dataFileRaw && !raw) {
                throw new ImageException("data-file-raw cannot be set on existing images");
            }
            raw = dataFileRaw;
        }
        if (lazyRefcounts != null) {
            lazy = lazyRefcounts;
        }
        if (refcountBits != null) {
            long b = (int) (long) refcountBits; // QEMU reads it through an int
            if (b <= 0 || b > 64 || Long.bitCount(b) != 1) {
                throw new ImageException("Refcount width must be a power of two and may not exceed 64 bits");
            }
            bits = b;
        }

        if (newVersion > oldVersion) {
            // Version 3 needs every snapshot's 64-bit VM state size and disk size (qcow2_upgrade).
            if (snapshots.stream().anyMatch(s -> s.extraData().length < 16)) {
                try (Qcow2Image image = Qcow2Image.open(file, dir, options.withGuestWrites(false))) {
                    Snapshots.rewriteTable(image);
                }
            }
            HeaderRewrite.rewrite(file, h -> h.withVersion(3));
        }
        if (keySlots != null) {
            ImageEncryption.changeKeySlots(file, header, options, keySlots, force);
        }
        if (bits != header.refcountBits()) {
            if (newVersion < 3 && bits != 16) {
                throw new ImageException("Refcount widths other than 16 bits require compatibility level 1.1 or"
                        + " above (use compat=1.1 or greater)");
            }
            boolean downgrade = newVersion < oldVersion; // the other step with progress, which comes last
            RefcountWidthChange.apply(file, (int) bits, done -> progress.accept(downgrade ? done / 2 : done));
        }
        boolean keepRaw = raw;
        HeaderRewrite.rewrite(file, h -> withDataFile(h, keepRaw, dataFile));
        if ((backingFile != null || backingFormat != null) && (!Objects.equals(backingFile, header.backingFile())
                || !Objects.equals(backingFormat, header.backingFormat().orElse(null)))) {
            throw new ImageException("Cannot amend the backing file\nYou can use 'qemu-img rebase' instead.");
        }
        if (lazy != header.lazyRefcounts()) {
            if (lazy && newVersion < 3) {
                throw new ImageException("Lazy refcounts only supported with compatibility level 1.1 and above"
                        + " (use compat=1.1 or greater)");
            }
            // Turning them off needs a clean image: the open above repaired it, and closing left it clean.
            boolean on = lazy;
            HeaderRewrite.rewrite(file, h -> h.withFeatures(h.incompatibleFeatures(),
                    on ? h.compatibleFeatures() | Features.COMPAT_LAZY_REFCOUNTS
                            : h.compatibleFeatures() & ~Features.COMPAT_LAZY_REFCOUNTS, h.autoclearFeatures()));
        }
        if (size != null && size != 0) {
            try (Qcow2Image image = Qcow2Image.open(file, dir, options)) {
                image.resize(size);
            }
        }
        if (newVersion < oldVersion) {
            boolean widthChanged = bits != header.refcountBits();
            VersionDowngrade.apply(file, dir, options, done -> progress.accept(widthChanged ? 0.5 + done / 2 : done));
        }
        progress.accept(1);
    }

    /** The header with data_file_raw as asked and the data file renamed if asked ("" removes the name). */
    private static Header withDataFile(Header h, boolean raw, String dataFile) {
        long autoclear = raw ? h.autoclearFeatures() | Features.AUTOCLEAR_DATA_FILE_RAW
                : h.autoclearFeatures() & ~Features.AUTOCLEAR_DATA_FILE_RAW;
        Header changed = h.withFeatures(h.incompatibleFeatures(), h.compatibleFeatures(), autoclear);
        if (dataFile == null) {
            return changed;
        }
        List<HeaderExtension> ext = new ArrayList<>(changed.extensions().stream()
                .filter(e -> e.type() != HeaderExtension.DATA_FILE).toList());
        if (!dataFile.isEmpty()) {
            ext.add(new HeaderExtension(HeaderExtension.DATA_FILE, dataFile.getBytes(StandardCharsets.UTF_8)));
        }
        return changed.withBackingFile(changed.backingFile(), ext);
    }
}
