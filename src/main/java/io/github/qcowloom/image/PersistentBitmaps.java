package io.github.qcowloom.image;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;

/**
 * An image's persistent dirty bitmaps (QEMU's, for incremental backups), as a read-write open finds them. The open
 * marks each of them in use before any guest data can be written ({@link #markInUse}): in use is QEMU's own word for
 * a bitmap that was not saved after writes; QEMU sets the flag as it opens an image for writing, clears it only as
 * it stores the bitmap back, and takes a bitmap that has it as inconsistent (its user is told to remove it: qemu-img
 * bitmap --remove). The bitmaps the open keeps up to date are stored back at a clean close ({@link KeptBitmaps}); the
 * others, and all of them after a crash, stay in use. The extension and its autoclear bit stay, so the bitmaps'
 * clusters stay referenced: clearing the bit instead, as a program that knows nothing of bitmaps must, made QEMU warn
 * at every open and qemu-img check count their clusters as leaked. A directory QEMU would not load has its bit
 * cleared still.
 */
final class PersistentBitmaps {
    /**
     * The directory the header points to, read and walked.
     *
     * @param at where it is
     * @param directory its entries
     * @param refusal why QEMU would not load it, in its words; null if it would
     */
    record Directory(BitmapDirectory.Location at, BitmapDirectory directory, String refusal) {
    }

    private PersistentBitmaps() {
    }

    /** The directory, if the header has one inside the file that QEMU loads. */
    static Optional<Directory> loadable(Storage storage, Header header) throws IOException {
        long fileSize = storage.size();
        return read(storage, header).filter(d -> d.refusal() == null && d.at().offset() <= fileSize - d.at().size());
    }

    /**
     * Sets the in-use flag of every bitmap of {@code d}, one 4-byte write of its flags each, and syncs: the last step
     * of a read-write open, after every refusal, so that an open that fails leaves the bitmaps as they were, and
     * before any guest data can be written. Each flag word lies within one sector: a crash part way leaves some
     * bitmaps in use and the others as they were, which were still right. (Under cache=unsafe the sync is none, as
     * in QEMU.)
     */
    static void markInUse(Storage storage, Directory d) throws IOException {
        boolean wrote = false;
        for (BitmapDirectory.Entry e : d.directory().entries()) {
            if (!e.inUse()) {
                storage.write(ByteBuffer.allocate(4).putInt(0, e.inUseFlags()), d.at().offset() + e.flagsPosition());
                wrote = true;
            }
        }
        if (wrote) {
            storage.flush();
        }
    }

    /**
     * The bitmaps QEMU would list: none without the extension's autoclear bit (QEMU then drops the extension); a
     * directory it would not load is refused in its words.
     */
    static List<BitmapDirectory.Entry> list(Storage storage, Header header) throws IOException {
        Optional<Directory> d = read(storage, header);
        if (d.isEmpty()) {
            return List.of();
        }
        if (d.get().refusal() != null) {
            throw new CorruptImageException(d.get().refusal());
        }
        return d.get().directory().entries();
    }

    /** The directory the header points to, if QEMU would read one; bytes past the end of the file read as zeroes. */
    private static Optional<Directory> read(Storage storage, Header header) throws IOException {
        Optional<BitmapDirectory.Location> location = BitmapDirectory.Location.of(header);
        if (location.isEmpty()) {
            return Optional.empty();
        }
        BitmapDirectory.Location at = location.get();
        byte[] bytes = ImageMetadata.readBytes(storage, at.offset(), (int) at.size());
        BitmapDirectory directory = BitmapDirectory.parse(bytes, at.count());
        return Optional.of(new Directory(at, directory,
                directory.qemuRefusal(at.size(), header.clusterSize(), header.diskSize())));
    }
}
