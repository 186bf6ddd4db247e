package io.github.qcowloom.bitmap;

import io.github.qcowloom.image.BitmapBits;
import io.github.qcowloom.image.BitmapTables;
import io.github.qcowloom.image.TableEditor;
import java.io.IOException;
import java.util.Arrays;

/**
 * A bitmap merged with another, written as a new table into new clusters (QEMU's bdrv_merge_dirty_bitmap, then its
 * store): a bit of the result is set where the target's is, and where any byte it covers is set in the source. The
 * two may differ in granularity, as in QEMU's hbitmap_sparse_merge: a coarser source sets every finer bit its
 * range covers, up to the end of the disk; a finer one sets the coarser bit around it. One cluster of the result
 * is made at a time, from the source's runs of set bits, and one whose bits are all clear takes no cluster.
 */
final class MergedTable {
    private MergedTable() {
    }

    /**
     * Writes the data clusters of {@code target} merged with {@code source} (both over the same disk size), not
     * synced, and returns the new table's entries, not yet written.
     */
    static long[] write(TableEditor tables, BitmapBits target, BitmapBits source) throws IOException {
        int clusterBits = tables.header().clusterBits();
        long diskSize = target.diskSize();
        int tg = target.granularityBits();
        int sg = source.granularityBits();
        long perCluster = target.bitsPerCluster();
        return BitmapTables.writeData(tables, BitmapBits.tableEntries(diskSize, tg, clusterBits), k -> {
            long first = k * perCluster;
            long last = Math.min(target.count(), first + perCluster);
            // The guest bytes this cluster's bits cover, and the source's bits over them.
            long from = first << tg;
            long to = Math.min(last << tg, diskSize);
            long end = Math.min(source.count(), BitmapBits.count(to, sg));
            long j = source.nextSet(from >>> sg, end);
            if (j >= end && target.clusterClear(k)) {
                return null; // clear in both: no cluster to make
            }
            byte[] bits = target.cluster(k);
            while ((j = source.nextSet(j, end)) < end) {
                long runEnd = source.nextClear(j, end);
                long a = Math.max(j << sg, from);
                long b = Math.min(Math.min(runEnd << sg, diskSize), to);
                setBits(bits, (a >>> tg) - first, BitmapBits.count(b, tg) - first);
                j = runEnd;
            }
            return bits;
        });
    }

    /** Sets bits {@code [from, to)} of {@code bits}, least significant bit of each byte first. */
    static void setBits(byte[] bits, long from, long to) {
        long i = from;
        for (; i < to && (i & 7) != 0; i++) {
            bits[(int) (i >>> 3)] |= (byte) (1 << (i & 7));
        }
        if (to - i >= 8) {
            Arrays.fill(bits, (int) (i >>> 3), (int) (to >>> 3), (byte) -1);
            i = to & ~7L;
        }
        for (; i < to; i++) {
            bits[(int) (i >>> 3)] |= (byte) (1 << (i & 7));
        }
    }
}
