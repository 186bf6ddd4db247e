package io.github.qcowloom.image;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenFailures;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.HoleMap;
import io.github.qcowloom.storage.LockPermissions;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.UnsyncedStorage;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

/**
 * Opens images as qcow2 or raw, probing the format of a file whose format is not given as QEMU probes it ({@link
 * FormatProbe}); QEMU's other formats found there are refused, named.
 */
public final class ImageFormat {
    /** QEMU's image formats besides qcow2 and raw: names QEMU knows, which this driver does not open. */
    public static final Set<String> QEMU_OTHER_FORMATS = Set.of("bochs", "cloop", "dmg", "luks", "parallels", "qcow",
            "qed", "vdi", "vhdx", "vmdk", "vpc", "vvfat");

    private ImageFormat() {
    }

    /**
     * The format QEMU's probe finds for the file at {@code path} ({@link FormatProbe}): qcow2 or raw.
     *
     * @throws UnsupportedFeatureException naming another of QEMU's formats found there (vmdk, vdi, ...), which this
     *     driver does not open (before, they were taken for raw)
     */
    public static String probe(Path path) throws IOException {
        FileStorage.requireOpenable(path);
        byte[] head;
        try (InputStream in = Files.newInputStream(path)) {
            head = in.readNBytes(FormatProbe.BYTES);
        }
        String format = head.length == 0 ? "raw" : FormatProbe.formatOf(head, path.toString());
        if (!format.equals("qcow2") && !format.equals("raw")) {
            throw unknownDriver(path, format);
        }
        return format;
    }

    /** Opens a qcow2 or raw image as a device; {@code format} null means probe. */
    public static BlockDevice open(Path path, String format, OpenOptions options) throws IOException {
        String fmt = format != null ? format : probe(path);
        return switch (fmt) {
            case "qcow2" -> Qcow2Image.open(path, options);
            case "raw" -> {
                try {
                    RawImage.refuseEncryptionOptions(options.encryption());
                    FileStorage file = FileStorage.open(path, options.readOnly(), options.direct(),
                            options.tuning().storage(),
                            LockPermissions.forImage(options.locking(), options.readOnly()));
                    yield new RawImage(unsyncedIfAsked(file, options), HoleMap.open(path), options.discards(),
                            format == null);
                } catch (IOException e) {
                    throw OpenFailures.withContext(e, "Could not open '" + path + "': ");
                }
            }
            default -> throw unknownDriver(path, fmt);
        };
    }

    /**
     * Opens a qcow2 or raw image on {@code file}, opened already (e.g. wrapped to count its syncs); a qcow2 image's
     * backing and data files are found in {@code imageDir}.
     */
    public static BlockDevice open(Storage file, Path imageDir, String format, OpenOptions options)
            throws IOException {
        return switch (format) {
            case "qcow2" -> Qcow2Image.open(file, imageDir, options);
            case "raw" -> new RawImage(unsyncedIfAsked(file, options), null, options.discards(), false);
            default -> throw unknownDriver(imageDir, format);
        };
    }

    /** qemu-img's words for a format it cannot open (ours: any but qcow2 and raw). */
    public static UnsupportedFeatureException unknownDriver(Path path, String format) {
        return unknownDriver(path.toString(), format);
    }

    /** {@link #unknownDriver(String)} in the context of the image named {@code name}, as qemu-img's open words it. */
    public static UnsupportedFeatureException unknownDriver(String name, String format) {
        return unknownDriver(format).withContext("Could not open '" + name + "': ");
    }

    /**
     * The refusal of {@code format}: in QEMU's words for a name it does not know either, and as not done here for
     * one of its other formats (QEMU would open the file and judge it).
     */
    public static UnsupportedFeatureException unknownDriver(String format) {
        return new UnsupportedFeatureException("format " + format, QEMU_OTHER_FORMATS.contains(format)
                ? "Image format '" + format + "' is not supported (qcow2 and raw are)"
                : "Unknown driver '" + format + "'");
    }

    private static Storage unsyncedIfAsked(Storage file, OpenOptions options) {
        return options.hostSyncs() ? file : new UnsyncedStorage(file);
    }
}
