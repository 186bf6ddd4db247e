package io.github.qcowloom.image;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The persistent dirty bitmaps a read-write open keeps up to date, as QEMU keeps them: each one that was consistent
 * (not in use) when the image was opened is read into memory; every guest write, zeroing or discard sets the bits
 * of its range in the enabled ones; and a clean close stores them all anew, without the in-use flag
 * ({@link BitmapTables}). Until then they are in use on disk ({@link PersistentBitmaps} marks them as the open's last
 * step), so a crash, or a close that cannot store them, leaves them inconsistent, as under QEMU. Bitmaps in use at
 * the open, whose tables QEMU would not load, or past the memory bound (an eighth of the heap for all of them) are
 * not kept: they stay in use, and a resize is refused while there are such bitmaps, as QEMU refuses it. A resize
 * that would take a kept bitmap past QEMU's limits (or to no bits at all) stops keeping it. Unlike QEMU, a snapshot
 * apply sets every bit ({@link #markAll}): the guest's data changed all over; under a disabled bitmap, which would
 * miss that, it is refused, as QEMU refuses it under any.
 *
 * <p>Lock discipline: none of its own. A request sets bits with one atomic OR per word, beside other requests
 * under the image lock held shared; the words and the list of kept bitmaps are replaced (resize) and read (store)
 * only with the image held exclusively, when no request runs. The list is volatile for the live readers
 * ({@link #live}), which read without the image lock; each takes one snapshot of a bitmap's words.
 */
final class KeptBitmaps {
    private static final Logger LOG = LoggerFactory.getLogger(KeptBitmaps.class);
    private static final VarHandle WORD = MethodHandles.arrayElementVarHandle(long[].class);

    /** None kept: an open for reading or for metadata alone, or an image without bitmaps. */
    static final KeptBitmaps NONE = new KeptBitmaps(List.of(), List.of());

    /** A bitmap kept: its entry as the open found it, its table then, and its bits, 64 a word. */
    private record Kept(BitmapDirectory.Entry entry, long[] oldTable, long[] words, long count) {
    }

    /** The directory as the open found it, in order. */
    private final List<BitmapDirectory.Entry> found;
    /** The bitmaps kept; replaced by a resize. */
    private volatile List<Kept> kept;
    /** What all the kept bitmaps' words may take. */
    private long budget = Runtime.getRuntime().maxMemory() / 8;

    private KeptBitmaps(List<BitmapDirectory.Entry> found, List<Kept> kept) {
        this.found = found;
        this.kept = kept;
        for (Kept k : kept) {
            budget -= k.words.length * 8L;
        }
    }

    /** Reads the bits of every bitmap of {@code d} that is consistent, before the open marks them in use. */
    static KeptBitmaps load(Storage file, Header header, PersistentBitmaps.Directory d) throws IOException {
        long budget = Runtime.getRuntime().maxMemory() / 8;
        int clusterBits = header.clusterBits();
        List<Kept> kept = new ArrayList<>();
        for (BitmapDirectory.Entry e : d.directory().entries()) {
            if (e.inUse()) {
                continue;
            }
            long count = BitmapBits.count(header.diskSize(), e.granularityBits());
            long bytes = wordBytes(count);
            if (bytes > budget) {
                LOG.warn("bitmap '{}' of {} bytes not kept (past an eighth of the heap for all): it stays in use",
                        e.name(), bytes);
                continue;
            }
            BitmapBits bits;
            try {
                bits = BitmapBits.load(file, e, header.diskSize(), header.clusterBits());
            } catch (CorruptImageException refused) {
                LOG.warn("bitmap not kept, it stays in use: {}", refused.getMessage());
                continue;
            }
            budget -= bytes;
            long[] words = new long[Math.toIntExact(bytes / 8)];
            for (int k = 0; (long) k << (clusterBits - 3) < words.length; k++) {
                ByteBuffer c = ByteBuffer.wrap(bits.cluster(k)).order(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0, w = k << (clusterBits - 3); i < c.capacity() / 8 && w + i < words.length; i++) {
                    words[w + i] = c.getLong(i * 8);
                }
            }
            kept.add(new Kept(e, bits.table(), words, count));
        }
        return new KeptBitmaps(d.directory().entries(), List.copyOf(kept));
    }

    /** The bytes of the words that hold {@code count} bits. */
    private static long wordBytes(long count) {
        return ((count + 63) >>> 6) * 8;
    }

    /**
     * Cluster {@code k} of a table over {@code words}: their bytes, least significant first, then zeroes; null if
     * all are clear.
     */
    private static byte[] cluster(long[] words, int k, int clusterBits) {
        int first = k << (clusterBits - 3);
        int last = (int) Math.min(words.length, (long) first + (1 << (clusterBits - 3)));
        int set = first;
        while (set < last && words[set] == 0) {
            set++;
        }
        if (set >= last) {
            return null;
        }
        ByteBuffer bytes = ByteBuffer.allocate(1 << clusterBits).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0, w = k << (clusterBits - 3); i < bytes.capacity() / 8 && w + i < words.length; i++) {
            bytes.putLong(i * 8, words[w + i]);
        }
        return bytes.array();
    }

    boolean isEmpty() {
        return kept.isEmpty();
    }

    /** Sets the bits over guest bytes {@code [offset, offset + length)} in every enabled bitmap. */
    void mark(long offset, long length) {
        if (length <= 0) {
            return;
        }
        for (Kept k : kept) {
            if (k.entry.auto()) {
                int g = k.entry.granularityBits();
                setBits(k.words, offset >>> g, Math.min(k.count, BitmapBits.count(offset + length, g)));
            }
        }
    }

    /**
     * Why QEMU would refuse to resize the disk (qcow2_truncate_bitmaps_check): a bitmap of the directory that is not
     * kept, the first in the directory's order; null if every one is kept.
     */
    String resizeRefusal() {
        for (BitmapDirectory.Entry e : found) {
            if (kept.stream().noneMatch(k -> k.entry == e)) {
                return e.inUse() ? "Bitmap '" + e.name() + "' is inconsistent and cannot be used\nTry"
                        + " block-dirty-bitmap-remove to delete this bitmap from disk"
                        : "Cannot resize qcow2 with persistent bitmaps that were not loaded into memory";
            }
        }
        return null;
    }

    /**
     * Why a snapshot apply is refused, in QEMU's words (it refuses one under any bitmap), or null: a disabled bitmap,
     * a record kept still for a backup, would miss the change, where {@link #markAll} sets the enabled ones' bits.
     */
    String applyRefusal() {
        for (Kept k : kept) {
            if (!k.entry.auto()) {
                return "Device has active dirty bitmaps";
            }
        }
        return null;
    }

    /** Sets every bit of every enabled bitmap: all of the guest's data changed (a snapshot applied). */
    void markAll() {
        for (Kept k : kept) {
            if (k.entry.auto()) {
                setBits(k.words, 0, k.count);
            }
        }
    }

    /**
     * The disk's new size: bits added are clear, bits cut off are dropped (QEMU's bdrv_dirty_bitmap_truncate). A
     * bitmap the new size would take past QEMU's limits, to no bits at all or past the memory bound is no longer
     * kept: it stays in use. With the image held exclusively.
     */
    void resize(long newSize, int clusterBits) {
        if (kept.isEmpty()) {
            return; // NONE is shared: it is never written
        }
        for (Kept k : kept) {
            budget += k.words.length * 8L; // all released first, so that the order does not decide who fits
        }
        List<Kept> resized = new ArrayList<>();
        for (Kept k : kept) {
            int g = k.entry.granularityBits();
            long count = BitmapBits.count(newSize, g);
            long bytes = wordBytes(count);
            if (count == 0 || BitmapBits.tooLarge(newSize, g, 1L << clusterBits) || bytes > budget) {
                LOG.warn("bitmap '{}' no longer kept at a disk size of {} bytes: it stays in use", k.entry.name(),
                        newSize);
                continue;
            }
            long[] words = Arrays.copyOf(k.words, (int) (bytes / 8));
            if ((count & 63) != 0) {
                words[words.length - 1] &= (1L << (count & 63)) - 1; // bits past the new end clear
            }
            budget -= bytes;
            resized.add(new Kept(k.entry, k.oldTable, words, count));
        }
        kept = List.copyOf(resized);
    }

    /**
     * The live bits of the kept bitmap {@code name}, as requests set them (QEMU exports a bitmap so: NBD's
     * qemu:dirty-bitmap context); null if it is not kept. Thread-safe: it only reads words.
     */
    DirtyBits live(String name) {
        Kept found = kept.stream().filter(k -> k.entry.name().equals(name)).findFirst().orElse(null);
        return found == null ? null : new LiveBits(found, false);
    }

    /**
     * A kept bitmap's live bits; a {@link #reader()} reads one snapshot of its words (the bitmap as it is then: a
     * resize replaces them, and one it stopped keeping reads as it was last kept).
     */
    private final class LiveBits implements DirtyBits {
        private volatile Kept last;
        private final boolean fixed;

        LiveBits(Kept last, boolean fixed) {
            this.last = last;
            this.fixed = fixed;
        }

        private Kept now() {
            if (!fixed) {
                Kept seen = last;
                kept.stream().filter(k -> k.entry == seen.entry).findFirst().ifPresent(k -> last = k);
            }
            return last;
        }

        @Override
        public int granularityBits() {
            return last.entry.granularityBits();
        }

        @Override
        public long count() {
            return now().count;
        }

        @Override
        public long nextSet(long from, long limit) {
            return next(now().words, from, limit, true);
        }

        @Override
        public long nextClear(long from, long limit) {
            return next(now().words, from, limit, false);
        }

        @Override
        public DirtyBits reader() {
            return new LiveBits(now(), true);
        }
    }

    /** The first bit in {@code [from, limit)} that is {@code set}, or {@code limit}; past the words, none is. */
    private static long next(long[] words, long from, long limit, boolean set) {
        limit = Math.min(limit, (long) words.length << 6);
        for (long i = from; i < limit; i = (i | 63) + 1) {
            long word = (long) WORD.getOpaque(words, (int) (i >>> 6));
            long match = (set ? word : ~word) & (-1L << (i & 63));
            if (match != 0) {
                return Math.min(limit, (i & ~63L) + Long.numberOfTrailingZeros(match));
            }
        }
        return limit;
    }

    /** A copy of the bits of the kept bitmap {@code name}, 64 a word; null if it is not kept. For tests. */
    long[] words(String name) {
        return kept.stream().filter(k -> k.entry.name().equals(name)).findFirst().map(k -> k.words.clone())
                .orElse(null);
    }

    private static void setBits(long[] words, long from, long to) {
        for (long i = from; i < to; i = (i | 63) + 1) {
            long end = Math.min(to, (i | 63) + 1);
            long mask = (end - i == 64 ? -1L : ((1L << (end - i)) - 1)) << (i & 63);
            int w = (int) (i >>> 6);
            if ((words[w] & mask) != mask) { // set already, as most are under rewrites: no locked instruction
                WORD.getAndBitwiseOr(words, w, mask);
            }
        }
    }

    /**
     * Stores every kept bitmap anew, with the bits it holds and its flags as the open found them (not in use); the
     * others stay as they are, in use. With the image held exclusively, at a clean close.
     */
    void store(TableEditor tables) throws IOException {
        int clusterBits = tables.header().clusterBits();
        long diskSize = tables.header().diskSize();
        List<BitmapDirectory.Entry> entries = new ArrayList<>();
        List<BitmapTables.Table> retired = new ArrayList<>();
        Map<BitmapDirectory.Entry, Kept> byEntry = new IdentityHashMap<>();
        for (Kept k : kept) {
            byEntry.put(k.entry, k);
        }
        for (BitmapDirectory.Entry e : found) {
            Kept k = byEntry.get(e);
            if (k == null) {
                entries.add(BitmapDirectory.Entry.of(e.name(), e.tableOffset(), e.tableEntries(), e.inUseFlags(),
                        e.granularityBits()));
                continue;
            }
            long count = BitmapBits.tableEntries(diskSize, e.granularityBits(), clusterBits);
            long[] data = BitmapTables.writeData(tables, count, c -> cluster(k.words, c, clusterBits));
            BitmapTables.Table table = BitmapTables.writeTable(tables, data);
            entries.add(BitmapDirectory.Entry.of(e.name(), table.offset(), count, e.flags(), e.granularityBits()));
            retired.add(new BitmapTables.Table(e.tableOffset(), k.oldTable));
        }
        BitmapTables.publish(tables, entries, retired);
    }
}
