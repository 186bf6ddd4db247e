package io.github.qcowloom.check;

import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import java.io.IOException;

/**
 * Allocation figures of the active tree (QEMU's BlockFragInfo, gathered by check_refcounts_l2 with
 * CHECK_FRAG_INFO): allocated, fragmented and compressed guest clusters.
 */
record ClusterStats(long allocated, long fragmented, long compressed) {

    /** Walks the active L1 table and its L2 tables in guest order. */
    static ClusterStats of(CheckedFile f) throws IOException {
        var h = f.header;
        long size = f.file.size();
        long cs = h.clusterSize();
        boolean extended = h.extendedL2();
        int entrySize = h.l2EntrySize();
        long allocated = 0;
        long fragmented = 0;
        long compressed = 0;
        long l1Bytes = Math.min(8L * h.l1Size(), Math.max(0, size - h.l1TableOffset()));
        byte[] l1 = f.read(h.l1TableOffset(), (int) Math.max(0, l1Bytes));
        for (int i = 0; i + 8 <= l1.length; i += 8) {
            long l1Entry = Bytes.getLong(l1, i);
            long l2Offset = L1Entry.l2Offset(l1Entry);
            // As QEMU's check_refcounts_l1: any entry but 0 is walked, one whose offset is 0 over the header, one
            // partly past the end over zeroes there (wholly past the end: zeroes only, nothing to count).
            if (l1Entry == 0 || l2Offset >= size) {
                continue;
            }
            byte[] l2 = f.read(l2Offset, (int) cs); // zeroes past the end
            // QEMU keeps next_contiguous_offset per L2 table (a local of check_refcounts_l2).
            long next = 0;
            for (int pos = 0; pos + entrySize <= l2.length; pos += entrySize) {
                long entry = Bytes.getLong(l2, pos);
                ClusterType type = L2Entry.type(entry, extended, h.hasDataFile());
                switch (type) {
                    case COMPRESSED -> {
                        // QEMU counts every compressed cluster as fragmented; errors skip the counting.
                        if (!h.hasDataFile() && (!extended || Bytes.getLong(l2, pos + 8) == 0)) {
                            allocated++;
                            compressed++;
                            fragmented++;
                        }
                    }
                    case NORMAL, ZERO_ALLOC -> {
                        long offset = L2Entry.hostOffset(entry);
                        allocated++;
                        if (next != 0 && offset != next) {
                            fragmented++;
                        }
                        next = offset + cs;
                    }
                    default -> {
                    }
                }
            }
        }
        return new ClusterStats(allocated, fragmented, compressed);
    }
}
