package io.github.qcowloom.alloc;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * Repairs COPIED flags of the active tree that disagree with refcount == 1 (the repairing half of QEMU's
 * check_oflag_copied), for qemu-img check -r and for the repair of a dirty image on read-write open. Entries are
 * rewritten in place, one 8-byte write each, then synced.
 *
 * <p>Run it only once the stored refcounts are right and durable: a flag follows its refcount, so setting COPIED
 * from a refcount that is still too low would let a write in place change what a snapshot sees. Any order among
 * the flags is safe from then on, and a crash part way leaves flags that a second run fixes.
 */
public final class CopiedFlags {
    private CopiedFlags() {
    }

    /**
     * Sets or clears each wrong COPIED flag of the active L1 table and its L2 tables as read from {@code file};
     * returns how many were fixed and adds QEMU's "Repairing" lines to {@code messages}.
     */
    public static int repair(Storage file, Header h, RefcountTable table, List<String> messages) throws IOException {
        int bits = h.clusterBits();
        long cs = h.clusterSize();
        long size = file.size();
        int fixed = 0;
        for (int i = 0; i < h.l1Size(); i++) {
            long l1Pos = h.l1TableOffset() + 8L * i;
            if (l1Pos + 8 > size) {
                break;
            }
            long l1Entry = readLong(file, l1Pos);
            long l2Offset = L1Entry.l2Offset(l1Entry);
            if (l2Offset == 0) {
                continue;
            }
            Long refcount = refcount(table, l2Offset >>> bits);
            if (refcount != null && (refcount == 1) != L1Entry.copied(l1Entry)) {
                messages.add("Repairing OFLAG_COPIED L2 cluster: l1_index=" + i + " l1_entry="
                        + Long.toHexString(l1Entry) + " refcount=" + Long.toUnsignedString(refcount));
                writeLong(file, l1Pos, refcount == 1 ? l1Entry | L1Entry.COPIED : l1Entry & ~L1Entry.COPIED);
                fixed++;
            }
            if ((l2Offset & (cs - 1)) != 0 || l2Offset + cs > size) {
                continue;
            }
            byte[] l2 = new byte[(int) cs];
            file.readFully(ByteBuffer.wrap(l2), l2Offset);
            int entrySize = h.l2EntrySize();
            for (int pos = 0; pos + entrySize <= l2.length; pos += entrySize) {
                long entry = Bytes.getLong(l2, pos);
                ClusterType type = L2Entry.type(entry, h.extendedL2(), h.hasDataFile());
                if (type != ClusterType.NORMAL && type != ClusterType.ZERO_ALLOC) {
                    continue;
                }
                Long rc = h.hasDataFile() ? Long.valueOf(1) : refcount(table, L2Entry.hostOffset(entry) >>> bits);
                if (rc != null && (rc == 1) != L2Entry.copied(entry)) {
                    messages.add("Repairing OFLAG_COPIED data cluster: l2_entry=" + Long.toHexString(entry)
                            + " refcount=" + Long.toUnsignedString(rc));
                    writeLong(file, l2Offset + pos, rc == 1 ? entry | L2Entry.COPIED : entry & ~L2Entry.COPIED);
                    fixed++;
                }
            }
        }
        if (fixed > 0) {
            file.flush();
        }
        return fixed;
    }

    /** The stored refcount, or null where it cannot be read (QEMU skips such entries). */
    private static Long refcount(RefcountTable table, long cluster) throws IOException {
        try {
            return table.get(new HostCluster(cluster));
        } catch (CorruptImageException e) {
            return null;
        }
    }

    private static long readLong(Storage file, long offset) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8);
        file.readFully(b, offset);
        return b.getLong(0);
    }

    private static void writeLong(Storage file, long offset, long value) throws IOException {
        file.write(ByteBuffer.allocate(8).putLong(0, value), offset);
    }
}
