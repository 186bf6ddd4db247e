package io.github.qcowloom.alloc;

import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.RefcountCodec;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.Map;
import java.util.function.LongUnaryOperator;

/**
 * QEMU's rebuild_refcount_structure (qemu-img check -r all): when the refcount structures cannot be trusted, a
 * new reftable and new refblocks holding the recounted references are written past everything in use, then the
 * header is switched to them. The old structures become free clusters. A crash before the header switch leaves
 * the old (broken) structures in place, so the repair can simply run again.
 */
public final class RefcountRebuild {
    private RefcountRebuild() {
    }

    public static void rebuild(Storage file, Header header, ReferenceCount refs) throws IOException {
        int bits = header.clusterBits();
        long cs = header.clusterSize();
        RefcountCodec codec = new RefcountCodec(header.refcountOrder());
        long perBlock = codec.entriesPerBlock(cs);
        // The recount's references, less one for each time the walk counted a cluster as the old refcount
        // structures (free once the new ones are in place). Nothing is copied: a copy per cluster of the file
        // would size this by the file's length.
        Map<Long, Integer> structure = new HashMap<>();
        for (long c : refs.refcountStructureClusters()) {
            structure.merge(c, 1, Integer::sum);
        }
        LongUnaryOperator count = c -> {
            long r = refs.references(c);
            return r == 0 ? 0 : Math.max(0, r - structure.getOrDefault(c, 0));
        };
        long[] last = {0};
        refs.forEachReferenced(c -> {
            if (count.applyAsLong(c) != 0) {
                last[0] = c;
            }
        });
        long highest = last[0];
        // The new area starts past every cluster in use and past the end of the file.
        long areaStart = Math.max(highest + 1, Bytes.alignUp(file.size(), cs) >>> bits);
        RefcountCoverage coverage = RefcountCoverage.of(areaStart, perBlock, cs);
        long blocks = coverage.refblocks();
        long tableClusters = coverage.reftableClusters();
        if (tableClusters * cs > Limits.MAX_REFTABLE_BYTES) {
            throw new ImageTooLargeException("Rebuilt refcount table would exceed " + Limits.MAX_REFTABLE_BYTES);
        }
        long blocksStart = areaStart;
        long tableStart = areaStart + blocks;
        long end = tableStart + tableClusters;
        byte[] table = new byte[(int) (tableClusters * cs)];
        for (long b = 0; b < blocks; b++) {
            byte[] block = new byte[(int) cs];
            for (long i = 0; i < perBlock; i++) {
                long c = b * perBlock + i;
                long value = count.applyAsLong(c);
                if (c >= blocksStart && c < end) {
                    value = 1; // the new structures count themselves
                }
                if (value != 0) {
                    codec.set(block, (int) i, Math.min(value, codec.max() == -1 ? value : codec.max()));
                }
            }
            file.write(ByteBuffer.wrap(block), (blocksStart + b) << bits);
            Bytes.putLong(table, (int) (b * 8), (blocksStart + b) << bits);
        }
        file.write(ByteBuffer.wrap(table), tableStart << bits);
        // The new structures are complete on disk before the header points to them.
        file.flush();
        HeaderField pointer = HeaderField.REFCOUNT_TABLE_OFFSET;
        file.write(pointer.encode(tableStart << bits, tableClusters), pointer.offset());
        file.flush();
    }
}
