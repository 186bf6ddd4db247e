package io.github.qcowloom.image;

import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The active L2 entries of an image file as a test compares them between two writers: per guest cluster the
 * cluster type, COPIED and the subcluster bitmap, but not the host offset (allocation order may differ).
 */
final class L2Dump {
    private L2Dump() {
    }

    /** One line per guest cluster that is not plain unallocated: "cluster: TYPE copied bitmap". */
    static List<String> describe(Path image) throws IOException {
        Header h = ImagePoker.header(image);
        long clusters = (h.size() + h.clusterSize() - 1) / h.clusterSize();
        long perTable = h.clusterSize() / h.l2EntrySize();
        List<String> out = new ArrayList<>();
        for (long c = 0; c < clusters; c++) {
            long l1Entry = ImagePoker.getLong(image, h.l1TableOffset() + 8 * (c / perTable));
            long l2 = L1Entry.l2Offset(l1Entry);
            if (l2 == 0) {
                continue;
            }
            byte[] words = ImagePoker.read(image, l2 + (c % perTable) * h.l2EntrySize(), h.l2EntrySize());
            long entry = Bytes.getLong(words, 0);
            long bitmap = h.extendedL2() ? Bytes.getLong(words, 8) : 0;
            if (entry == 0 && bitmap == 0) {
                continue;
            }
            ClusterType type = L2Entry.type(entry, h.extendedL2(), h.hasDataFile());
            out.add(c + ": " + type + (L2Entry.copied(entry) ? " copied" : "") + (h.extendedL2()
                    ? String.format(" alloc %08x zero %08x", bitmap & 0xffffffffL, bitmap >>> 32)
                    : (entry & L2Entry.ZERO) != 0 ? " zero-flag" : ""));
        }
        return out;
    }
}
