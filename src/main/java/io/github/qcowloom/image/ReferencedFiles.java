package io.github.qcowloom.image;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ReferencedFileException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;

/**
 * Turns a file name stored in an image (backing file, external data file) into a path. Names resolve relative
 * to the image's folder, as QEMU does; {@code json:} specifications and protocol prefixes other than a local file's
 * ({@code file:}, {@code host_device:}, {@code host_cdrom:}, {@link ProtocolPrefix}) are refused, because an
 * untrusted image must not make us open arbitrary resources (CVE-2024-4467, CVE-2024-32498).
 */
public final class ReferencedFiles {
    private ReferencedFiles() {
    }

    /**
     * The name QEMU gives the file {@code name} that the image named {@code imageName} refers to
     * (bdrv_get_full_backing_filename_from_filename's path_combine): {@code name} itself where it is absolute, has a
     * protocol or the image's name has no folder, else the image's folder, as named, with {@code name} after it.
     */
    public static String qemuName(String imageName, String name) {
        int slash = imageName.lastIndexOf('/');
        return name.startsWith("/") || ProtocolPrefix.of(name) != null || slash < 0 ? name
                : imageName.substring(0, slash + 1) + name;
    }

    /**
     * The name QEMU's file layer opens for the file {@code name} that the image named {@code imageName} refers to,
     * as its "Could not open 'NAME'" names it: {@link #qemuName}, or the file after a local file's protocol prefix.
     */
    public static String openedName(String imageName, String name) {
        return ProtocolPrefix.of(name) != null ? ProtocolPrefix.fileName(name) : qemuName(imageName, name);
    }

    /**
     * The file {@code name} names from an image in {@code imageDir} (null: the working directory), unchecked: a
     * local file's protocol prefix names the rest, from the working directory; a relative name is in the folder.
     *
     * @throws InvalidPathException where the name is no path here
     */
    public static Path path(Path imageDir, String name) {
        Path p = Path.of(ProtocolPrefix.fileName(name));
        return p.isAbsolute() || imageDir == null || ProtocolPrefix.of(name) != null ? p : imageDir.resolve(p);
    }

    /**
     * The file {@code name}, from an image in {@code imageDir} (null: from the working directory), names.
     *
     * @throws UnsupportedFeatureException for a name this driver does not follow: empty, json:, a protocol other than
     *     a local file's
     * @throws ReferencedFileException for a local file's protocol before a file of a kind it does not open
     */
    public static Path resolve(Path imageDir, String name, String what) throws ImageException {
        if (name.isEmpty()) {
            throw new UnsupportedFeatureException(what + " name", "The image names an empty " + what);
        }
        if (name.startsWith("json:")) {
            throw new UnsupportedFeatureException(what + " json: specification",
                    "Refusing to follow a json: " + what + " specification: " + name);
        }
        String protocol = ProtocolPrefix.of(name);
        if (protocol != null && !ProtocolPrefix.local(protocol)) {
            throw new UnsupportedFeatureException(what + " protocol " + protocol,
                    "Refusing to follow the " + what + " '" + name + "': protocol '" + protocol + "' is not supported");
        }
        try {
            ProtocolPrefix.localFile(name); // file:, host_device:: the kind of file its protocol opens
        } catch (ImageException e) {
            throw new ReferencedFileException(e.getMessage(), e);
        }
        try {
            return path(imageDir, name);
        } catch (InvalidPathException e) {
            throw new UnsupportedFeatureException(what + " name",
                    "The image names a " + what + " that is not a valid path here: " + e.getMessage());
        }
    }
}
