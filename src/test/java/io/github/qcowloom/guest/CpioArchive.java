package io.github.qcowloom.guest;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;

/**
 * An uncompressed cpio archive in the "newc" format, the one the Linux kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst): directories, regular files, symlinks and
 * character devices, all owned by root. Parent directories are added on demand, each once. Archives written
 * this way may be concatenated; the kernel unpacks them in turn, later entries overwriting earlier ones.
 */
final class CpioArchive {
    private static final int S_IFDIR = 0040000;
    private static final int S_IFREG = 0100000;
    private static final int S_IFLNK = 0120000;
    private static final int S_IFCHR = 0020000;

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final Set<String> directories = new HashSet<>();
    private int inode = 1;
    private boolean finished;

    /** Adds {@code path} (absolute, "/" separated) as a directory with its parents. */
    CpioArchive directory(String path) {
        String p = relative(path);
        if (p.isEmpty() || directories.contains(p)) {
            return this;
        }
        int slash = p.lastIndexOf('/');
        if (slash > 0) {
            directory(p.substring(0, slash));
        }
        directories.add(p);
        entry(p, S_IFDIR | 0755, 2, 0, 0, new byte[0]);
        return this;
    }

    CpioArchive file(String path, int permissions, byte[] data) {
        String p = parentsOf(path);
        entry(p, S_IFREG | permissions, 1, 0, 0, data);
        return this;
    }

    CpioArchive symlink(String path, String target) {
        String p = parentsOf(path);
        entry(p, S_IFLNK | 0777, 1, 0, 0, target.getBytes(StandardCharsets.UTF_8));
        return this;
    }

    CpioArchive characterDevice(String path, int major, int minor) {
        String p = parentsOf(path);
        entry(p, S_IFCHR | 0600, 1, major, minor, new byte[0]);
        return this;
    }

    /** The archive with its trailer; nothing may be added afterwards. */
    byte[] finish() {
        if (!finished) {
            entry("TRAILER!!!", 0, 1, 0, 0, new byte[0]);
            finished = true;
        }
        return out.toByteArray();
    }

    private String parentsOf(String path) {
        String p = relative(path);
        int slash = p.lastIndexOf('/');
        if (slash > 0) {
            directory(p.substring(0, slash));
        }
        return p;
    }

    private static String relative(String path) {
        String p = path;
        while (p.startsWith("/")) {
            p = p.substring(1);
        }
        while (p.endsWith("/")) {
            p = p.substring(0, p.length() - 1);
        }
        return p;
    }

    private void entry(String name, int mode, int links, int rdevMajor, int rdevMinor, byte[] data) {
        if (finished) {
            throw new IllegalStateException("archive already finished");
        }
        byte[] nameBytes = name.getBytes(StandardCharsets.UTF_8);
        StringBuilder h = new StringBuilder(110);
        h.append("070701");
        int[] fields = {inode++, mode, 0, 0, links, 0, data.length, 0, 0, rdevMajor, rdevMinor,
                nameBytes.length + 1, 0};
        for (int f : fields) {
            h.append(String.format("%08x", f));
        }
        out.writeBytes(h.toString().getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(nameBytes);
        out.write(0);
        pad();
        out.writeBytes(data);
        pad();
    }

    private void pad() {
        while (out.size() % 4 != 0) {
            out.write(0);
        }
    }
}
