package io.github.qcowloom.alloc;

import io.github.qcowloom.api.ImageTooLargeException;
import java.util.HashMap;
import java.util.Map;

/**
 * References per host cluster for the recount, in pages of {@link #PAGE_CLUSTERS} 16-bit counters allocated only
 * where a reference lands: memory follows what the tables reference, not the length of the file (a dirty image in
 * a sparse 64 GiB file with 512-byte clusters would otherwise need 128 Mi counters). QEMU's own table holds
 * refcount_bits per cluster of the whole file; 16 bits are what its default width needs. Counts of 0xFFFF and
 * more, possible only with refcounts wider than 16 bits, go to a side map.
 *
 * <p>Every allocation is charged against a memory bound first: past it the recount is refused with a typed
 * {@link ImageTooLargeException} naming what it would need, instead of an OutOfMemoryError in whatever thread
 * happens to allocate next.
 */
final class ClusterCounts {
    static final int PAGE_BITS = 12;
    static final int PAGE_CLUSTERS = 1 << PAGE_BITS;
    /** A page's counters and array header. */
    private static final long PAGE_BYTES = 2L * PAGE_CLUSTERS + 16;
    /** A side map entry: node, boxed key and value. */
    private static final long WIDE_ENTRY_BYTES = 80;
    /** In a page, this count means "see {@link #wide}" (only when the maximum exceeds 16 bits). */
    private static final char WIDE = 0xFFFF;

    private final char[][] pages;
    private final long max;
    private final long memoryBound;
    private final Map<Long, Long> wide = new HashMap<>();
    /** Bytes charged so far, by this structure and by {@link #charge}. */
    private long memory;

    /**
     * Counters for clusters {@code 0 .. clusters-1}, each counting up to {@code max} (the refcount width's
     * maximum), within {@code memoryBound} bytes.
     */
    ClusterCounts(long clusters, long max, long memoryBound) throws ImageTooLargeException {
        this.max = max;
        this.memoryBound = memoryBound;
        long pageCount = (clusters + PAGE_CLUSTERS - 1) >>> PAGE_BITS;
        charge(8 * pageCount + 16);
        this.pages = new char[(int) pageCount][];
    }

    /** References counted for {@code cluster} (0 outside the range). */
    long get(long cluster) {
        if (cluster < 0) {
            return 0;
        }
        long p = cluster >>> PAGE_BITS;
        if (p >= pages.length || pages[(int) p] == null) {
            return 0;
        }
        char v = pages[(int) p][(int) (cluster & (PAGE_CLUSTERS - 1))];
        return v == WIDE && max > WIDE ? wide.get(cluster) : v;
    }

    /** Adds one reference to {@code cluster}; false, changing nothing, if the count is at the maximum already. */
    boolean increment(long cluster) throws ImageTooLargeException {
        return incrementBy(cluster, 1) == 0;
    }

    /**
     * Adds {@code n} references to {@code cluster}, as many single increments would: the count stops at the
     * maximum. Returns how many of them found it there (each an overflow to report).
     */
    long incrementBy(long cluster, long n) throws ImageTooLargeException {
        int p = (int) (cluster >>> PAGE_BITS);
        char[] page = pages[p];
        if (page == null) {
            charge(PAGE_BYTES);
            page = new char[PAGE_CLUSTERS];
            pages[p] = page;
        }
        int i = (int) (cluster & (PAGE_CLUSTERS - 1));
        long count = page[i] == WIDE && max > WIDE ? wide.get(cluster) : page[i];
        long added = Math.min(n, max - count);
        if (added == 0) {
            return n;
        }
        long now = count + added;
        if (now >= WIDE && max > WIDE) {
            if (page[i] != WIDE) {
                charge(WIDE_ENTRY_BYTES);
                page[i] = WIDE;
            }
            wide.put(cluster, now);
        } else {
            page[i] = (char) now;
        }
        return n - added;
    }

    /**
     * The first cluster at or after {@code from} in a page that holds counts, or {@link Long#MAX_VALUE}: every
     * cluster skipped has no reference.
     */
    long nextCounted(long from) {
        long p = from >>> PAGE_BITS;
        if (p < pages.length && pages[(int) p] != null) {
            return from;
        }
        for (p++; p < pages.length; p++) {
            if (pages[(int) p] != null) {
                return p << PAGE_BITS;
            }
        }
        return Long.MAX_VALUE;
    }

    /** Charges {@code bytes} the recount is about to allocate besides the counters; refuses past the bound. */
    void charge(long bytes) throws ImageTooLargeException {
        if (memory + bytes > memoryBound) {
            throw new ImageTooLargeException("Recounting the references needs more than " + mib(memory + bytes)
                    + " of memory, more than the " + mib(memoryBound) + " allowed (ImageOptions.recountMemoryBytes)");
        }
        memory += bytes;
    }

    /** Gives back {@code bytes} charged for an allocation that is garbage now. */
    void release(long bytes) {
        memory -= bytes;
    }

    /** Bytes charged so far. */
    long memory() {
        return memory;
    }

    private static String mib(long bytes) {
        return (bytes + (1 << 20) - 1 >> 20) + " MiB";
    }
}
