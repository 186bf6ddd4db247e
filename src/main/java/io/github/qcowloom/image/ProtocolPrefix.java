package io.github.qcowloom.image;

import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.storage.FileType;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Set;

/**
 * A file name's protocol as QEMU reads it (block.c): a ':' before any '/' makes what precedes it a protocol (its
 * path_has_protocol, POSIX form). Three of QEMU's protocols name a local file, the rest of the name (file-posix.c's
 * drivers, bdrv_parse_filename_strip_prefix): {@code file:} a regular file, {@code host_device:} and {@code
 * host_cdrom:} a device. Such a name is opened as it stands, from the working directory, wherever it is given: QEMU
 * joins no image's folder to a name with a protocol.
 */
public final class ProtocolPrefix {
    /** The protocols whose rest names a device; {@code file} names a regular file. */
    private static final Set<String> DEVICES = Set.of("host_device", "host_cdrom");

    private ProtocolPrefix() {
    }

    /** The protocol {@code name} starts with, or null where it names a file without one. */
    public static String of(String name) {
        int stop = 0;
        while (stop < name.length() && name.charAt(stop) != ':' && name.charAt(stop) != '/') {
            stop++;
        }
        return stop < name.length() && name.charAt(stop) == ':' ? name.substring(0, stop) : null;
    }

    /** Whether {@code protocol} (from {@link #of}) names a local file by the rest of the name. */
    public static boolean local(String protocol) {
        return protocol.equals("file") || DEVICES.contains(protocol);
    }

    /**
     * The name of the local file that {@code name} names: itself where it has no protocol, else the rest after a
     * {@link #local} protocol's prefix, checked as QEMU's open checks it. The caller refuses other protocols first.
     *
     * @throws ImageException in QEMU's words where nothing follows the prefix, or where the file is there and of a
     *     kind its protocol does not open (see {@link #requireKind}); the caller adds its context
     */
    public static String localFile(String name) throws ImageException {
        String protocol = of(name);
        if (protocol == null) {
            return name;
        }
        if (!local(protocol)) {
            throw new IllegalArgumentException("not a local file's protocol: " + protocol);
        }
        String file = fileName(name);
        if (file.isEmpty()) {
            throw noName(protocol);
        }
        requireKind(protocol, file);
        return file;
    }

    /**
     * {@code name} without its protocol's prefix, as QEMU's file layer names the file it opens (in its "Could not
     * open 'NAME'"): with "./" before a rest that would read as a protocol itself; {@code name} where it has none.
     */
    public static String fileName(String name) {
        String protocol = of(name);
        if (protocol == null) {
            return name;
        }
        String rest = name.substring(protocol.length() + 1);
        return of(rest) == null ? rest : "./" + rest;
    }

    /**
     * Refuses {@code file} where it is there and not of the kind QEMU's {@code driver} (file, host_device or
     * host_cdrom: a protocol prefix's, or --image-opts' {@code file.driver}) opens, in its words; a file that is not
     * there is left to the open, which says so.
     */
    public static void requireKind(String driver, String file) throws ImageException {
        FileType type;
        try {
            type = FileType.of(Path.of(file)).orElse(null);
        } catch (InvalidPathException e) {
            return; // the open refuses the name
        }
        if (type == null) {
            return;
        }
        if (DEVICES.contains(driver) && !type.device()) {
            throw new ImageException("'" + driver + "' driver requires '" + file
                    + "' to be either a character or block device");
        }
        if (driver.equals("file") && type != FileType.REGULAR) {
            throw notRegular(file);
        }
    }

    /**
     * Refuses, in the words of QEMU's file driver (a name without a protocol's), a name it would not open: none, or
     * a folder. (A device's name it opens through host_device, which it picks by the file.)
     */
    public static void requirePlainFile(String name) throws ImageException {
        if (name.isEmpty()) {
            throw noName("file");
        }
        if (FileType.of(Path.of(name)).orElse(null) == FileType.DIRECTORY) {
            throw notRegular(name);
        }
    }

    private static ImageException noName(String driver) {
        return new ImageException("The '" + driver + "' block driver requires a file name");
    }

    private static ImageException notRegular(String file) {
        return new ImageException("'file' driver requires '" + file + "' to be a regular file");
    }
}
