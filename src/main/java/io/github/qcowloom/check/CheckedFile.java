package io.github.qcowloom.check;

import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.Snapshot;
import io.github.qcowloom.storage.FileStorage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;

/** An image file opened the way the check sees it: header, snapshot table and a refcount table over a cache. */
final class CheckedFile implements AutoCloseable {
    final FileStorage file;
    final Header header;
    final List<Snapshot> snapshots;
    final TableCache cache;
    final RefcountTable table;

    private CheckedFile(FileStorage file) throws IOException {
        this.file = file;
        try {
            this.header = ImageMetadata.readHeader(file);
            this.snapshots = ImageMetadata.readSnapshots(file, header);
            this.cache = new TableCache(file, (int) Math.min(header.clusterSize(), 4096), 64);
            this.table = new RefcountTable(file, header, cache);
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    /** Opens {@code path} read-only, or read-write for a repair. */
    static CheckedFile open(Path path, boolean writable) throws IOException {
        return new CheckedFile(FileStorage.open(path, !writable, false));
    }

    byte[] read(long offset, int length) throws IOException {
        byte[] b = new byte[length];
        file.readFully(ByteBuffer.wrap(b), offset);
        return b;
    }

    void writeLong(long offset, long value) throws IOException {
        byte[] b = new byte[8];
        Bytes.putLong(b, 0, value);
        file.write(ByteBuffer.wrap(b), offset);
    }

    /** Writes the dirty refblock slices back and syncs. */
    void writeBack() throws IOException {
        cache.writeBack(cache.copyDirty());
        file.flush();
    }

    /**
     * Clears the dirty and corrupt bits (incompatible features bits 0 and 1, at byte 72) and syncs, as QEMU's
     * qcow2_mark_clean and qcow2_mark_consistent do after a successful repair. Version 2 has no such bits.
     */
    void markCleanAndConsistent() throws IOException {
        long features = header.incompatibleFeatures();
        if (header.version() >= 3 && (features & 3) != 0) {
            writeLong(72, features & ~3L);
            file.flush();
        }
    }

    @Override
    public void close() throws IOException {
        file.close();
    }
}
