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
 * An image's persistent dirty bitmaps (QEMU's, for incremental backups), which this driver reads but does not keep
 * up to date. A read-write open marks each of them in use before anything else is written ({@link #markInUse}): in
 * use is QEMU's own word for a bitmap that was not saved after writes; QEMU sets the flag as it opens an image for
 * writing, clears it only as it stores the bitmap back, and takes a bitmap that has it as inconsistent (its user is
 * told to remove it: qemu-img bitmap --remove). The extension and its autoclear bit stay, so the bitmaps' clusters
 * stay referenced: clearing the bit instead, as a program that knows nothing of bitmaps must, made QEMU warn at every
 * open and qemu-img check count their clusters as leaked. A directory QEMU would not load has its bit cleared still.
 */
final class PersistentBitmaps {
    private PersistentBitmaps() {
    }

    /** The directory, if the header has one that QEMU loads (see {@link BitmapDirectory#qemuRefusal}). */
    static Optional<BitmapDirectory> loadable(Storage storage, Header header) throws IOException {
        Optional<BitmapDirectory.Location> at = BitmapDirectory.Location.of(header);
        if (at.isEmpty() || at.get().offset() > storage.size() - at.get().size()) {
            return Optional.empty();
        }
        BitmapDirectory directory = read(storage, at.get());
        return directory.qemuRefusal(at.get().size(), header.clusterSize(), header.diskSize()) == null
                ? Optional.of(directory) : Optional.empty();
    }

    /**
     * Sets the in-use flag of every bitmap of {@code directory}, one 4-byte write of its flags each, and syncs; the
     * last step of a read-write open, after every refusal, so that an open that fails leaves the bitmaps as they
     * were. Each flag word lies within one sector: a crash part way leaves some bitmaps in use and the others as
     * they were, which were still right, as nothing else had been written. (Under cache=unsafe the sync is none, as
     * in QEMU.)
     */
    static void markInUse(Storage storage, Header header, BitmapDirectory directory) throws IOException {
        long offset = BitmapDirectory.Location.of(header).orElseThrow().offset();
        boolean wrote = false;
        for (BitmapDirectory.Entry e : directory.entries()) {
            if (!e.inUse()) {
                storage.write(ByteBuffer.allocate(4).putInt(0, e.inUseFlags()), offset + e.flagsPosition());
                wrote = true;
            }
        }
        if (wrote) {
            storage.flush();
        }
    }

    /**
     * The bitmaps QEMU would list: none without the extension's autoclear bit (QEMU then drops the extension); a
     * directory it could not load is refused in its words (qcow2-bitmap.c's bitmap_list_load).
     */
    static List<BitmapDirectory.Entry> list(Storage storage, Header header) throws IOException {
        Optional<BitmapDirectory.Location> at = BitmapDirectory.Location.of(header);
        if (at.isEmpty()) {
            return List.of();
        }
        BitmapDirectory directory = read(storage, at.get());
        String refusal = directory.qemuRefusal(at.get().size(), header.clusterSize(), header.diskSize());
        if (refusal != null) {
            throw new CorruptImageException(refusal);
        }
        return directory.entries();
    }

    /** Reads and walks the directory; bytes past the end of the file read as zeroes, as in QEMU. */
    private static BitmapDirectory read(Storage storage, BitmapDirectory.Location at) throws IOException {
        byte[] dir = ImageMetadata.readBytes(storage, at.offset(), (int) at.size());
        return BitmapDirectory.parse(dir, at.count());
    }
}
