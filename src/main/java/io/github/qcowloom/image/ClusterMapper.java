package io.github.qcowloom.image;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.cache.Slice;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.L1Entry;
import java.io.IOException;

/** Finds the L2 entry of a guest cluster: L1 table in memory, then the L2 slice through the cache. */
final class ClusterMapper {
    private final ImageGeometry geometry;
    private final TableCache l2Cache;
    private volatile long[] l1;

    ClusterMapper(ImageGeometry geometry, TableCache l2Cache, long[] l1) {
        this.geometry = geometry;
        this.l2Cache = l2Cache;
        this.l1 = l1;
    }

    long[] l1() {
        return l1;
    }

    /** The L2 entry for guest cluster {@code cluster}; {@link L2Ref#UNALLOCATED} if its L2 table is absent. */
    L2Ref lookup(long cluster) throws IOException {
        long l1Index = cluster >>> geometry.l2Bits();
        long[] table = l1;
        if (l1Index >= table.length) {
            return L2Ref.UNALLOCATED;
        }
        long l2Offset = L1Entry.l2Offset(table[(int) l1Index]);
        if (l2Offset == 0) {
            return L2Ref.UNALLOCATED;
        }
        if ((l2Offset & (geometry.clusterSize() - 1)) != 0) {
            throw new CorruptImageException(String.format(
                    "L2 table offset %#x unaligned (L1 index: %#x)", l2Offset, l1Index));
        }
        int l2Index = (int) (cluster & (geometry.l2Entries() - 1));
        long byteInTable = (long) l2Index * geometry.l2EntrySize();
        int sliceSize = l2Cache.sliceSize();
        Slice slice = l2Cache.get(l2Offset + (byteInTable & -sliceSize));
        int at = (int) (byteInTable & (sliceSize - 1));
        long entry = slice.getLong(at);
        long bitmap = geometry.extendedL2() ? slice.getLong(at + 8) : 0;
        return new L2Ref(l2Offset, entry, bitmap);
    }
}
