package io.github.qcowloom.cli;

import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.storage.ImageLock;
import io.github.qcowloom.storage.LockPermissions;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HexFormat;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The file that {@code create} and {@code convert} write: built under a temporary name in the target's directory,
 * synced, renamed over the target, and the directory synced, so that a process killed (or a host that loses power)
 * at any moment leaves the old file, no file, or the complete new image; never a header whose tables were never
 * written, which is what writing the target in place leaves (qemu-img has that window). Under {@code -t unsafe}
 * nothing is synced ({@link #commit}): a killed process is still covered, a host crash is not.
 *
 * <p>A rename replaces the file's identity, not only its bytes, so it is used only where nothing else is lost: the
 * target is absent, or a regular file of ours with one link, in a folder we may write. Otherwise the target is
 * written in place, as qemu-img does: a device, a symbolic link (whose relative backing and data file names must
 * resolve beside the link), a file owned by another user (its owner would change), a hard-linked file, a folder we
 * cannot write in; a file we may not write fails as qemu-img's open does. The temporary file has the target's mode
 * from its creation, so it never shows a guest's data to more readers than the target does; a kill leaves it behind
 * ({@code .NAME.part-XXXXXXXX} beside the target), never a damaged target. An external data file that a new qcow2
 * image names is created at its own path, not here.
 *
 * <p>An existing target is locked for writing, as qemu-img's open of it would be, from {@link #begin} to
 * {@link #close}: a target that QEMU (or another of our processes) has open is refused with qemu-img's message,
 * not replaced under it.
 */
final class AtomicTarget implements AutoCloseable {
    private final Path target;
    private final Path file;
    private final boolean inPlace;
    /** The write lock on the existing target, or null (no target yet, or one written in place, which its open locks). */
    private final ImageLock lock;
    private boolean committed;

    private AtomicTarget(Path target, Path file, boolean inPlace, ImageLock lock) {
        this.target = target;
        this.file = file;
        this.inPlace = inPlace;
        this.lock = lock;
    }

    /** Starts a replacement of {@code requested}, creating its (empty) temporary file, or chooses to write in place. */
    static AtomicTarget begin(Path requested) throws IOException {
        Path target = requested.toAbsolutePath();
        if (!replaceable(target)) {
            return new AtomicTarget(target, requested, true, null);
        }
        ImageLock lock = null;
        Set<PosixFilePermission> mode = null;
        if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
            mode = Files.getPosixFilePermissions(target, LinkOption.NOFOLLOW_LINKS);
            try {
                lock = ImageLock.acquire(target, requested.toString(), LockPermissions.readWrite());
            } catch (ImageLockedException e) {
                throw e.withContext(requested + ": "); // qemu-img create's and convert's words
            }
        }
        try {
            String suffix = HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt());
            Path temp = target.resolveSibling("." + target.getFileName() + ".part-" + suffix);
            if (mode == null) {
                Files.createFile(temp); // a new target: the process's umask, as qemu-img's file gets
            } else {
                // Owner-only at first whatever the umask, then exactly the target's mode, before any byte is written.
                Files.createFile(temp, PosixFilePermissions.asFileAttribute(
                        Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE)));
                Files.setPosixFilePermissions(temp, mode);
            }
            return new AtomicTarget(target, temp, false, lock);
        } catch (IOException | RuntimeException e) {
            if (lock != null) {
                lock.close();
            }
            throw e;
        }
    }

    /** True if a rename may replace {@code target}: see the class comment. */
    private static boolean replaceable(Path target) throws IOException {
        Path folder = target.getParent();
        if (folder == null || !Files.isWritable(folder)) {
            return false;
        }
        if (!Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
            return true;
        }
        if (!Files.isRegularFile(target, LinkOption.NOFOLLOW_LINKS) || !Files.isWritable(target)) {
            return false;
        }
        Object links = Files.getAttribute(target, "unix:nlink", LinkOption.NOFOLLOW_LINKS);
        String owner = Files.getOwner(target, LinkOption.NOFOLLOW_LINKS).getName();
        return Integer.valueOf(1).equals(links) && owner.equals(System.getProperty("user.name"));
    }

    /** Where the caller writes the new file: a temporary name beside the target, or the target itself in place. */
    Path file() {
        return file;
    }

    /**
     * Makes the written file the target. When {@code durable}, its data reaches the disk before the rename, and the
     * rename before this returns, so no order of a crash can show the new name with missing contents. Otherwise
     * (qemu-img's {@code -t unsafe}) nothing is synced: a killed process still leaves the old file or the complete
     * new one, but a host crash may show the new name before its data, as qemu-img's writes in place would. The
     * caller has closed the file.
     */
    void commit(boolean durable) throws IOException {
        if (!inPlace) {
            if (durable) {
                sync(file);
            }
            Files.move(file, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            if (durable) {
                // The rename itself is a change of the folder: durable only once the folder is synced.
                sync(target.getParent());
            }
        }
        // A file written in place is synced (or not) as the command's cache mode says.
        committed = true;
    }

    /** Removes the temporary file of a replacement that did not commit (the command failed); the target is untouched. */
    @Override
    public void close() throws IOException {
        try {
            if (!committed && !inPlace) {
                Files.deleteIfExists(file);
            }
        } finally {
            if (lock != null) {
                lock.close();
            }
        }
    }

    private static void sync(Path path) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            ch.force(true);
        }
    }
}
