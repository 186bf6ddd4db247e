package io.github.qcowloom.cli;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFileAttributeView;
import java.util.HexFormat;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The file that {@code create} and {@code convert} write: built under a temporary name in the target's directory,
 * synced, renamed over the target, and the directory synced, so that a process killed (or a host that loses power)
 * at any moment leaves the old file, no file, or the complete new image; never a header whose tables were never
 * written, which is what writing the target in place leaves (qemu-img has that window).
 *
 * <p>A target that exists and is not a regular file (a block device, {@code /dev/null}) cannot be replaced by a
 * rename: it is written in place, as qemu-img does. A symbolic link is followed, so the file it names is replaced
 * and the link stays. An external data file that a new qcow2 image names is created at its own path, not here.
 * A kill leaves the temporary file behind ({@code .NAME.part-XXXXXXXX} beside the target), never a damaged target.
 */
final class AtomicTarget implements AutoCloseable {
    private final Path target;
    private final Path file;
    private final boolean inPlace;
    private boolean committed;

    private AtomicTarget(Path target, Path file, boolean inPlace) {
        this.target = target;
        this.file = file;
        this.inPlace = inPlace;
    }

    /** Starts a replacement of {@code requested}; nothing is created yet: the caller creates {@link #file()}. */
    static AtomicTarget begin(Path requested) throws IOException {
        Path target = Files.isSymbolicLink(requested) ? requested.toRealPath() : requested.toAbsolutePath();
        if (Files.exists(target) && !Files.isRegularFile(target, LinkOption.NOFOLLOW_LINKS)) {
            return new AtomicTarget(target, target, true);
        }
        String suffix = HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt());
        Path temp = target.resolveSibling("." + target.getFileName() + ".part-" + suffix);
        if (Files.exists(temp, LinkOption.NOFOLLOW_LINKS)) {
            throw new FileAlreadyExistsException(temp.toString());
        }
        return new AtomicTarget(target, temp, false);
    }

    /** Where the caller writes the new file: a temporary name beside the target, or the target itself in place. */
    Path file() {
        return file;
    }

    /**
     * Makes the written file the target: its data reaches the disk before the rename, and the rename before this
     * returns, so no order of a crash can show the new name with missing contents. The caller has closed the file.
     */
    void commit() throws IOException {
        committed = true;
        if (inPlace) {
            return; // a device written in place is synced (or not) as the command's cache mode says
        }
        sync(file);
        keepPermissions();
        Files.move(file, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        // The rename itself is a change of the directory: durable only once the directory is synced.
        sync(target.getParent());
    }

    /** Removes the temporary file of a replacement that did not commit (the command failed); the target is untouched. */
    @Override
    public void close() throws IOException {
        if (!committed && !inPlace) {
            Files.deleteIfExists(file);
        }
    }

    /** A replaced file keeps its mode, as one that qemu-img truncates and rewrites does. */
    private void keepPermissions() throws IOException {
        PosixFileAttributeView old = Files.getFileAttributeView(target, PosixFileAttributeView.class);
        if (old != null && Files.exists(target)) {
            Files.setPosixFilePermissions(file, old.readAttributes().permissions());
        }
    }

    private static void sync(Path path) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }
}
