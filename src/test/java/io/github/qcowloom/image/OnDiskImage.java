package io.github.qcowloom.image;

import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.RefcountComparison;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.LockPermissions;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Test fixture: what an image file holds on disk right now (read through its own file handle, so an open image's
 * unflushed caches are not seen): L2 entries, refcounts, and the recount that check compares them with.
 */
final class OnDiskImage implements AutoCloseable {
    private final FileStorage file;
    final Header header;
    private final RefcountTable refcounts;

    private OnDiskImage(FileStorage file) throws IOException {
        this.file = file;
        this.header = ImageMetadata.readHeader(file);
        this.refcounts = new RefcountTable(file, header, new TableCache(file, 512, 16));
    }

    static OnDiskImage open(Path path) throws IOException {
        // No lock bytes: it inspects the file beside an open of the image, as qemu-img -U would.
        return new OnDiskImage(FileStorage.open(path, true, false, StorageBackend.FILECHANNEL, LockPermissions.NONE));
    }

    /** The L2 entry of guest cluster {@code cluster}, 0 when its L2 table is absent. */
    long l2Entry(long cluster) throws IOException {
        int l2Bits = header.clusterBits() - 3;
        long l1Index = cluster >>> l2Bits;
        if (l1Index >= header.l1Size()) {
            return 0;
        }
        long l2 = L1Entry.l2Offset(read(header.l1TableOffset() + 8 * l1Index));
        return l2 == 0 ? 0 : read(l2 + 8 * (cluster & ((1L << l2Bits) - 1)));
    }

    /** Every guest cluster's L2 entry, in guest order (0 where there is none). */
    List<Long> l2Entries() throws IOException {
        long clusters = (header.size() + header.clusterSize() - 1) >>> header.clusterBits();
        List<Long> out = new ArrayList<>();
        for (long c = 0; c < clusters; c++) {
            out.add(l2Entry(c));
        }
        return out;
    }

    long refcount(long hostCluster) throws IOException {
        return refcounts.get(new HostCluster(hostCluster));
    }

    /** Stored refcounts against the references the tables hold, as qemu-img check compares them. */
    RefcountComparison compare() throws IOException {
        return RefcountComparison.compare(ReferenceCount.compute(file, header, List.of()), refcounts);
    }

    long fileSize() throws IOException {
        return file.size();
    }

    private long read(long offset) throws IOException {
        byte[] b = new byte[8];
        file.readFully(ByteBuffer.wrap(b), offset);
        return Bytes.getLong(b, 0);
    }

    @Override
    public void close() throws IOException {
        file.close();
    }
}
