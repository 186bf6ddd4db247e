package io.github.qcowloom.guest;

import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Reads the files of an ext4 image on the host without our code: {@code qemu-img convert} (QEMU's own qcow2
 * reader) to a raw file, then e2fsprogs' {@code debugfs rdump} of a directory. An independent witness of what
 * the guest wrote through our export.
 */
final class HostExt4 {
    private HostExt4() {
    }

    /** SHA-256 of every file in {@code directory} (e.g. "/data") of the ext4 file system in {@code qcow2}. */
    static Map<String, String> checksums(Path qcow2, String directory, Path scratch) throws IOException {
        Path raw = scratch.resolve("host-view.raw");
        Path out = Files.createDirectories(scratch.resolve("host-view"));
        Qemu.img("convert", "-O", "raw", qcow2.toString(), raw.toString());
        Qemu.run(List.of(GuestInitramfs.findTool("debugfs").toString(), "-R", "rdump " + directory + " " + out, raw.toString()));
        Map<String, String> sums = new TreeMap<>();
        Path dir = out.resolve(directory.substring(directory.lastIndexOf('/') + 1));
        try (Stream<Path> files = Files.list(dir)) {
            for (Path f : files.toList()) {
                sums.put(f.getFileName().toString(), sha256(f));
            }
        }
        Files.delete(raw);
        return sums;
    }

    static String sha256(Path file) throws IOException {
        try (DigestInputStream in = new DigestInputStream(Files.newInputStream(file),
                MessageDigest.getInstance("SHA-256"))) {
            in.transferTo(OutputStream.nullOutputStream());
            return HexFormat.of().formatHex(in.getMessageDigest().digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
