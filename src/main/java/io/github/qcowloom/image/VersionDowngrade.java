package io.github.qcowloom.image;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.bitmap.BitmapAction;
import io.github.qcowloom.bitmap.Bitmaps;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.DoubleConsumer;

/**
 * qemu-img amend -o compat=0.10 (QEMU's qcow2_downgrade) of a clean version 3 image that is not open: QEMU's
 * refusals in its words, then the zero clusters expanded ({@link ZeroClusterExpansion}), then persistent bitmaps
 * removed (version 2 cannot hold them), then the header rewritten as version 2 (72 bytes, no feature bits, zlib) in
 * one synced write. QEMU's refusals come before anything is changed (QEMU refuses zstd-compressed clusters only
 * after the expansion, and checks the active image alone, whose snapshots may keep clusters version 2 cannot read);
 * a corrupt zero cluster is refused where the expansion meets it. A failure part way leaves a sound version 3
 * image, expanded so far, with its bitmaps unless it came after their removal.
 */
final class VersionDowngrade {
    private VersionDowngrade() {
    }

    /** Downgrades the image in {@code file}, which the caller holds; its other files resolve against {@code dir}. */
    static void apply(Storage file, Path dir, OpenOptions options, DoubleConsumer progress) throws IOException {
        Header header = HeaderRewrite.readUnopenedHeader(file);
        refuse(file, header, ImageMetadata.readSnapshots(file, header));
        boolean bitmaps = header.extension(HeaderExtension.BITMAPS).isPresent();
        if (bitmaps) {
            requireLoadableBitmaps(file, dir, options);
        }
        expand(file, progress); // the header read again: the bitmaps' open may have written it
        if (bitmaps) {
            removeBitmaps(file, dir, options);
        }
        writeVersion2Header(file);
    }

    /**
     * Refuses what QEMU refuses, then expands the zero clusters of the image in {@code file} (the downgrade's steps
     * before the header, for an image without bitmaps); {@code progress} is told the fraction done.
     */
    static void expandZeroClusters(Storage file, DoubleConsumer progress) throws IOException {
        Header header = HeaderRewrite.readUnopenedHeader(file);
        refuse(file, header, ImageMetadata.readSnapshots(file, header));
        expand(file, progress);
    }

    private static void expand(Storage file, DoubleConsumer progress) throws IOException {
        Header header = HeaderRewrite.readUnopenedHeader(file);
        try {
            ZeroClusterExpansion.run(file, header, ImageMetadata.readSnapshots(file, header), progress);
        } catch (ImageException e) {
            throw e; // corrupt, too large, refused: typed already
        } catch (IOException e) {
            throw new ImageException("Failed to turn zero into data clusters: " + e.getMessage()
                    + " (the image is still compat=1.1)", e);
        }
    }

    /** The version 2 header, read anew: the expansion may have moved the refcount table. */
    static void writeVersion2Header(Storage file) throws IOException {
        HeaderRewrite.readUnopenedHeader(file);
        // No bitmaps extension either: without the autoclear bit QEMU drops it at its next header update.
        HeaderRewrite.rewrite(file, h -> {
            Header v2 = h.withFeatures(0, 0, 0).withVersion(2);
            return v2.withBackingFile(v2.backingFile(), v2.extensions().stream()
                    .filter(e -> e.type() != HeaderExtension.BITMAPS).toList());
        });
    }

    /** QEMU's refusals, in its order and words; then compressed zstd clusters anywhere. */
    private static void refuse(Storage file, Header header, List<Snapshot> snapshots) throws IOException {
        if (header.refcountOrder() != 4) {
            throw new ImageException("compat=0.10 requires refcount_bits=16");
        }
        if (header.hasDataFile()) {
            throw new ImageException("Cannot downgrade an image with a data file");
        }
        // Version 2 readers would take neither a snapshot of another size nor a VM state past 32 bits.
        for (Snapshot s : snapshots) {
            if (Long.compareUnsigned(s.vmStateSize(), 0xffffffffL) > 0
                    || s.diskSizeOr(header.diskSize()) != header.diskSize()) {
                throw new ImageException("Internal snapshots prevent downgrade of image");
            }
        }
        long others = header.incompatibleFeatures() & ~Features.INCOMPAT_COMPRESSION;
        if (others != 0) {
            throw new ImageException("Cannot downgrade an image with incompatible features " + Bytes.cHex(others)
                    + " set");
        }
        if ((header.incompatibleFeatures() & Features.INCOMPAT_COMPRESSION) != 0
                && hasCompressed(file, header, snapshots)) {
            throw new ImageException("Cannot downgrade an image with zstd compression type and existing"
                    + " compressed clusters");
        }
    }

    /**
     * Refuses, as QEMU's open does, bitmaps it could not load, before anything is changed: their removal after the
     * expansion loads them.
     */
    private static void requireLoadableBitmaps(Storage file, Path dir, OpenOptions options) throws IOException {
        try (Qcow2Image image = Qcow2Image.open(file, dir, options.withGuestWrites(false))) {
            Bitmaps.loaded(image);
        }
    }

    /**
     * Removes every persistent bitmap, as qemu-img bitmap --remove does. Version 2 has no autoclear bits, so QEMU
     * keeps the extension and then takes every bitmap for inconsistent and counts their clusters as leaked; here the
     * clusters are freed and the image stays clean.
     */
    private static void removeBitmaps(Storage file, Path dir, OpenOptions options) throws IOException {
        try (Qcow2Image image = Qcow2Image.open(file, dir, options.withGuestWrites(false))) {
            List<BitmapAction> removals = new ArrayList<>();
            for (BitmapDirectory.Entry e : image.persistentBitmaps()) {
                removals.add(new BitmapAction.Remove(e.name()));
            }
            Bitmaps.apply(image, String.valueOf(file.path()), removals, null);
        }
    }

    /**
     * True if a cluster of the active image or of a snapshot is compressed (QEMU's qcow2_has_compressed_clusters
     * looks at the active image alone); each distinct L2 table is read once.
     */
    private static boolean hasCompressed(Storage file, Header header, List<Snapshot> snapshots) throws IOException {
        for (long l2 : ImageMetadata.distinctL2Clusters(file, header, snapshots)) {
            byte[] table = ImageMetadata.readBytes(file, l2 << header.clusterBits(), (int) header.clusterSize());
            for (int j = 0; j < table.length / 8; j++) {
                if (L2Entry.type(Bytes.getLong(table, j * 8), false, false) == ClusterType.COMPRESSED) {
                    return true;
                }
            }
        }
        return false;
    }
}
