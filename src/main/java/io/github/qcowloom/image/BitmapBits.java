package io.github.qcowloom.image;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.BitmapTableEntry;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The bits of one persistent dirty bitmap, as its table of clusters in an image file holds them (qcow2.rst, "Bitmap
 * table"): bit {@code i} covers the guest's bytes {@code [i << granularityBits, (i + 1) << granularityBits)}, and
 * cluster {@code k} of the table holds bits {@code [k * 8 * clusterSize, (k + 1) * 8 * clusterSize)}, least
 * significant bit first. A cluster is read when a search reaches it, and only the last one read is kept: the memory
 * is the table and one cluster, whatever the disk's size.
 *
 * <p>Not thread-safe: one reader's cursor ({@link #reader()} gives another).
 */
public final class BitmapBits implements DirtyBits {
    private final Storage file;
    private final long[] table;
    private final int granularityBits;
    private final long diskSize;
    private final int clusterBits;
    private int cachedIndex = -1;
    private ByteBuffer cached;

    BitmapBits(Storage file, long[] table, int granularityBits, long diskSize, int clusterBits) {
        this.file = file;
        this.table = table;
        this.granularityBits = granularityBits;
        this.diskSize = diskSize;
        this.clusterBits = clusterBits;
    }

    /**
     * The table of {@code bitmap} read from {@code file} and checked as QEMU's load_bitmap checks it: every entry
     * valid, and as many as the disk needs. {@code bitmap} comes from a directory QEMU loads, whose tables are at
     * most 8 MiB.
     *
     * @throws CorruptImageException in QEMU's words, for a table QEMU would not load
     */
    static BitmapBits load(Storage file, BitmapDirectory.Entry bitmap, long diskSize, int clusterBits)
            throws IOException {
        long[] table = readTable(file, bitmap);
        for (long entry : table) {
            if (!BitmapTableEntry.valid(entry, 1L << clusterBits)) {
                throw new CorruptImageException("Could not read bitmap_table table from image for bitmap '"
                        + bitmap.name() + "': Invalid argument");
            }
        }
        if (table.length != tableEntries(diskSize, bitmap.granularityBits(), clusterBits)) {
            throw new CorruptImageException("Could not read bitmap '" + bitmap.name()
                    + "' from image: Invalid argument");
        }
        return new BitmapBits(file, table, bitmap.granularityBits(), diskSize, clusterBits);
    }

    /** The entries of {@code bitmap}'s table as stored, unchecked; bytes past the end of the file read as zeroes. */
    static long[] readTable(Storage file, BitmapDirectory.Entry bitmap) throws IOException {
        byte[] bytes = ImageMetadata.readBytes(file, bitmap.tableOffset(), Math.toIntExact(bitmap.tableEntries() * 8));
        long[] table = new long[(int) bitmap.tableEntries()];
        for (int i = 0; i < table.length; i++) {
            table[i] = Bytes.getLong(bytes, i * 8);
        }
        return table;
    }

    /** The table's entries needed for a bitmap of {@code granularityBits} over {@code diskSize} bytes. */
    public static long tableEntries(long diskSize, int granularityBits, int clusterBits) {
        long bits = count(diskSize, granularityBits);
        return (bits + (8L << clusterBits) - 1) >>> (clusterBits + 3);
    }

    /**
     * How many bits a bitmap of {@code granularityBits} over {@code diskSize} bytes has: the granules that cover
     * {@code [0, diskSize)}.
     */
    public static long count(long diskSize, int granularityBits) {
        return (diskSize + (1L << granularityBits) - 1) >>> granularityBits;
    }

    /**
     * QEMU's check_constraints_on_bitmap, of the size: a bitmap of {@code granularityBits} over {@code diskSize}
     * bytes takes more than 512 MiB of bits, or a table of more than its most entries of {@code clusterSize}.
     */
    public static boolean tooLarge(long diskSize, int granularityBits, long clusterSize) {
        long bytes = (count(diskSize, granularityBits) + 7) >>> 3;
        return bytes > Limits.MAX_BITMAP_BYTES || bytes > Limits.MAX_BITMAP_TABLE_ENTRIES * clusterSize;
    }

    @Override
    public BitmapBits reader() {
        return new BitmapBits(file, table, granularityBits, diskSize, clusterBits);
    }

    @Override
    public long count() {
        return count(diskSize, granularityBits);
    }

    @Override
    public int granularityBits() {
        return granularityBits;
    }

    /** The guest bytes the bitmap covers: QEMU's bitmap size. */
    public long diskSize() {
        return diskSize;
    }

    /** The table's entries, a copy. */
    public long[] table() {
        return table.clone();
    }

    /** How many bits one cluster of the table holds. */
    public long bitsPerCluster() {
        return 8L << clusterBits;
    }

    /** True if table cluster {@code k} has no data cluster and is not all ones: all its bits are clear. */
    public boolean clusterClear(int k) {
        return k >= table.length || table[k] == 0;
    }

    /**
     * A copy of the bits table cluster {@code k} holds (all zeroes or all ones without a data cluster), those past
     * the last bit clear: QEMU writes them so, and reads whole words back.
     */
    public byte[] cluster(int k) throws IOException {
        byte[] copy = new byte[1 << clusterBits];
        if (k < table.length && BitmapTableEntry.allOnes(table[k])) {
            Arrays.fill(copy, (byte) -1);
        } else if (k < table.length && BitmapTableEntry.offset(table[k]) != 0) {
            load(k).get(0, copy);
        }
        long past = Math.max(0, count() - k * bitsPerCluster());
        if (past < bitsPerCluster()) {
            int wholeFrom = (int) ((past + 7) >>> 3);
            for (long i = past; i < (long) wholeFrom << 3; i++) {
                copy[(int) (i >>> 3)] &= (byte) ~(1 << (i & 7));
            }
            Arrays.fill(copy, wholeFrom, copy.length, (byte) 0);
        }
        return copy;
    }

    @Override
    public long nextSet(long from, long limit) throws IOException {
        return next(from, limit, true);
    }

    @Override
    public long nextClear(long from, long limit) throws IOException {
        return next(from, limit, false);
    }

    private long next(long from, long limit, boolean set) throws IOException {
        long perCluster = bitsPerCluster();
        long i = from;
        while (i < limit) {
            int k = (int) (i / perCluster);
            long base = k * perCluster;
            long end = Math.min(limit, base + perCluster);
            long entry = k < table.length ? table[k] : 0;
            if (BitmapTableEntry.offset(entry) == 0) {
                if (BitmapTableEntry.allOnes(entry) == set) {
                    return i; // every bit of the cluster is the one searched for
                }
                i = end;
                continue;
            }
            ByteBuffer bits = load(k);
            for (long j = i - base; base + j < end; j = (j | 63) + 1) {
                long word = bits.getLong((int) (j >>> 6) * 8);
                long match = (set ? word : ~word) & (-1L << (j & 63));
                if (match != 0) {
                    long found = base + (j & ~63L) + Long.numberOfTrailingZeros(match);
                    if (found < end) {
                        return found;
                    }
                    break;
                }
            }
            i = end;
        }
        return limit;
    }

    private ByteBuffer load(int k) throws IOException {
        if (cachedIndex != k) {
            byte[] bytes = ImageMetadata.readBytes(file, BitmapTableEntry.offset(table[k]), 1 << clusterBits);
            cached = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
            cachedIndex = k;
        }
        return cached;
    }
}
