package io.github.qcowloom.image;

import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.ImageLock;
import io.github.qcowloom.storage.LockPermissions;
import io.github.qcowloom.storage.Storage;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The lock bytes on the files an image names (its data file and its backing chain) for a command that reads the
 * image file alone, as {@code check} does: qemu-img check opens the whole chain, so it holds these too and is
 * refused while another process writes a backing file. Each file is locked as an open of the image would lock it
 * ({@link LockPermissions#forBacking}, {@link LockPermissions#forDataFile}). A backing file's header is read before
 * its lock is taken, on a descriptor closed at once: POSIX locks (the fallback) would vanish with a descriptor
 * closed after them. A missing backing file is skipped (the check does not read it); a missing data file fails, as
 * in qemu-img. A chain that comes back to a file already held ends there: probing it again would open and close
 * a descriptor of a locked file.
 *
 * <p>Not thread-safe: taken and closed by the command's thread.
 */
public final class ReferencedFileLocks implements Closeable {
    private final List<ImageLock> locks;

    private ReferencedFileLocks(List<ImageLock> locks) {
        this.locks = locks;
    }

    /**
     * Locks what the image at {@code image}, whose header is {@code header}, names.
     *
     * @throws ImageLockedException with qemu-img's words ("Could not open backing file: ...") if a holder conflicts
     */
    public static ReferencedFileLocks acquire(Path image, Header header, ImageLocking locking, boolean readOnly)
            throws IOException {
        List<ImageLock> locks = new ArrayList<>();
        try {
            Path dir = image.toAbsolutePath().getParent();
            if (header.hasDataFile() && header.dataFile().isPresent()) {
                add(locks, ReferencedFiles.resolve(dir, header.dataFile().get(), "data file"),
                        LockPermissions.forDataFile(locking, readOnly));
            }
            Header h = header;
            Set<Object> seen = new HashSet<>();
            seen.add(fileKey(image));
            for (int depth = 0; h.backingFile() != null && depth < Qcow2Image.MAX_BACKING_DEPTH; depth++) {
                Path backing = ReferencedFiles.resolve(dir, h.backingFile(), "backing file");
                if (!Files.exists(backing) || !seen.add(fileKey(backing))) {
                    break;
                }
                Header next = "qcow2".equals(ImageFormat.probe(backing)) ? readHeader(backing) : null;
                try {
                    add(locks, backing, LockPermissions.forBacking(locking));
                } catch (ImageLockedException e) {
                    throw e.withContext("Could not open backing file: ");
                }
                if (next == null) {
                    break;
                }
                h = next;
                dir = backing.toAbsolutePath().getParent();
            }
            return new ReferencedFileLocks(locks);
        } catch (IOException | RuntimeException e) {
            new ReferencedFileLocks(locks).close();
            throw e;
        }
    }

    private static void add(List<ImageLock> locks, Path file, LockPermissions permissions) throws IOException {
        FileStorage.requireOpenable(file); // a FIFO's open would wait for a writer
        ImageLock lock = ImageLock.acquire(file, file.toString(), permissions);
        if (lock != null) {
            locks.add(lock);
        }
    }

    /** The file's identity (device and inode; its real path where the platform has none), whatever name reaches it. */
    static Object fileKey(Path file) throws IOException {
        Object key = Files.readAttributes(file, BasicFileAttributes.class).fileKey();
        return key != null ? key : file.toRealPath();
    }

    private static Header readHeader(Path file) throws IOException {
        try (Storage s = FileStorage.open(file, true, false, StorageBackend.FILECHANNEL, LockPermissions.NONE)) {
            return ImageMetadata.readHeader(s);
        }
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (ImageLock lock : locks) {
            try {
                lock.close();
            } catch (IOException e) {
                first = first == null ? e : first;
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
