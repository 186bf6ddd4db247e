package io.github.qcowloom.image;

import io.github.qcowloom.api.UnsupportedFeatureException;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;

/**
 * Turns a file name stored in an image (backing file, external data file) into a path. Names resolve relative
 * to the image's folder, as QEMU does; {@code json:} specifications and protocol prefixes are refused, because
 * an untrusted image must not make us open arbitrary resources (CVE-2024-4467, CVE-2024-32498).
 */
public final class ReferencedFiles {
    private ReferencedFiles() {
    }

    /**
     * The name QEMU gives the file {@code name} that the image named {@code imageName} refers to
     * (bdrv_get_full_backing_filename_from_filename's path_combine): {@code name} itself where it is absolute or the
     * image's name has no folder, else the image's folder, as named, with {@code name} after it.
     */
    public static String qemuName(String imageName, String name) {
        int slash = imageName.lastIndexOf('/');
        return name.startsWith("/") || slash < 0 ? name : imageName.substring(0, slash + 1) + name;
    }

    public static Path resolve(Path imageDir, String name, String what) throws UnsupportedFeatureException {
        if (name.isEmpty()) {
            throw new UnsupportedFeatureException(what + " name", "The image names an empty " + what);
        }
        if (name.startsWith("json:")) {
            throw new UnsupportedFeatureException(what + " json: specification",
                    "Refusing to follow a json: " + what + " specification: " + name);
        }
        // QEMU's path_has_protocol: a ':' before any '/' or '\' names a protocol.
        int stop = 0;
        while (stop < name.length() && ":/\\".indexOf(name.charAt(stop)) < 0) {
            stop++;
        }
        if (stop < name.length() && name.charAt(stop) == ':') {
            String protocol = name.substring(0, stop);
            throw new UnsupportedFeatureException(what + " protocol " + protocol,
                    "Refusing to follow the " + what + " '" + name + "': protocol '" + protocol + "' is not supported");
        }
        try {
            Path p = Path.of(name);
            if (p.isAbsolute() || imageDir == null) {
                return p;
            }
            return imageDir.resolve(p);
        } catch (InvalidPathException e) {
            throw new UnsupportedFeatureException(what + " name",
                    "The image names a " + what + " that is not a valid path here: " + e.getMessage());
        }
    }
}
