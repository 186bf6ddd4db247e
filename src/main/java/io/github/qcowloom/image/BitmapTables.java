package io.github.qcowloom.image;

import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.BitmapTableEntry;
import io.github.qcowloom.format.Bytes;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * Persistent bitmaps written through a table edit as QEMU stores them (qcow2_store_persistent_dirty_bitmaps): the
 * bits and the tables into new clusters ({@link #writeData}, {@link #writeTable}), then {@link #publish}: a new
 * directory, the refcounts durable, the header pointed at it in one synced rewrite, and only then the old directory
 * and the tables no bitmap uses any more freed. A crash before the header write leaves the old bitmaps and leaked
 * clusters, which the dirty bit set by the edit's first change repairs on the next open.
 */
public final class BitmapTables {
    /** The bits of cluster {@code k} of a bitmap's table; null if all are clear (known without making them). */
    @FunctionalInterface
    public interface Clusters {
        byte[] cluster(int k) throws IOException;
    }

    /** A table in the file: where it is and its entries. */
    public record Table(long offset, long[] entries) {
    }

    private BitmapTables() {
    }

    /**
     * Writes the {@code count} clusters of a bitmap's bits that are not all clear into new clusters (not synced)
     * and returns the table's entries for them: 0 for a cluster all clear, as QEMU leaves it.
     */
    public static long[] writeData(TableEditor tables, long count, Clusters bits) throws IOException {
        long[] entries = new long[Math.toIntExact(count)];
        byte[] clear = new byte[(int) tables.header().clusterSize()];
        for (int k = 0; k < entries.length; k++) {
            byte[] cluster = bits.cluster(k);
            if (cluster != null && Arrays.mismatch(cluster, clear) >= 0) {
                entries[k] = tables.allocate(cluster.length);
                tables.writeNewTable(entries[k], cluster, "bitmap data");
            }
        }
        return entries;
    }

    /** Writes a table of {@code entries} into new clusters (not synced) and returns where. */
    public static Table writeTable(TableEditor tables, long[] entries) throws IOException {
        byte[] table = new byte[Math.toIntExact(entries.length * 8L)];
        for (int i = 0; i < entries.length; i++) {
            Bytes.putLong(table, i * 8, entries[i]);
        }
        long offset = tables.allocate(table.length);
        tables.writeNewTable(offset, table, "bitmap table");
        return new Table(offset, entries.clone());
    }

    /**
     * Makes {@code entries} the image's bitmaps (none: the extension goes), their tables written already; then frees
     * the old directory and {@code retired}, tables no entry points to any more.
     */
    public static void publish(TableEditor tables, List<BitmapDirectory.Entry> entries, List<Table> retired)
            throws IOException {
        Optional<BitmapDirectory.Location> old = BitmapDirectory.Location.of(tables.header());
        Optional<BitmapDirectory.Location> at = Optional.empty();
        if (!entries.isEmpty()) {
            byte[] directory = BitmapDirectory.encode(entries);
            long offset = tables.allocate(directory.length);
            tables.writeNewTable(offset, directory, "bitmap directory");
            at = Optional.of(new BitmapDirectory.Location(entries.size(), directory.length, offset));
        }
        // The tables, the directory and their refcounts, durable before the header points to them.
        tables.flush();
        tables.publishBitmaps(at);
        // Nothing points to the old directory and the retired tables any more, durably: they may be reused.
        if (old.isPresent()) {
            tables.free(old.get().offset(), old.get().size());
        }
        for (Table t : retired) {
            free(tables, t);
        }
    }

    /**
     * Frees {@code table} and the data clusters its valid entries point to (an invalid one, in a table another
     * writer left, points to nothing this driver frees).
     */
    public static void free(TableEditor tables, Table table) throws IOException {
        long clusterSize = tables.header().clusterSize();
        for (long e : table.entries()) {
            if (BitmapTableEntry.valid(e, clusterSize) && BitmapTableEntry.offset(e) != 0) {
                tables.free(BitmapTableEntry.offset(e), clusterSize);
            }
        }
        tables.free(table.offset(), table.entries().length * 8L);
    }
}
