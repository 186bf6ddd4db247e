package io.github.qcowloom.virtio;

import java.util.Arrays;
import java.util.List;

/**
 * Where each guest-physical address lives: a table of non-overlapping regions ({@code start}, {@code size}) sorted
 * by start and looked up by binary search. Shared by the memory implementations so that the bounds checks are
 * written once; {@link #slot} answers the region's index as the caller gave it.
 */
public final class GuestRegions {
    /** One region: guest-physical start and size in bytes. */
    public record Region(long start, long size) {
        public Region {
            if (size < 1 || start < 0 || start > Long.MAX_VALUE - size) {
                throw new IllegalArgumentException("region of " + size + " bytes at " + start);
            }
        }
    }

    private final long[] starts;
    private final long[] ends;
    private final int[] slots;
    private final long[] startBySlot;

    /** The table of {@code regions}; throws IllegalArgumentException if two overlap. */
    public GuestRegions(List<Region> regions) {
        int n = regions.size();
        Integer[] byStart = new Integer[n];
        for (int i = 0; i < n; i++) {
            byStart[i] = i;
        }
        Arrays.sort(byStart, (a, b) -> Long.compare(regions.get(a).start(), regions.get(b).start()));
        starts = new long[n];
        ends = new long[n];
        slots = new int[n];
        startBySlot = new long[n];
        for (int k = 0; k < n; k++) {
            Region r = regions.get(byStart[k]);
            if (k > 0 && r.start() < ends[k - 1]) {
                throw new IllegalArgumentException("guest memory regions overlap at 0x" + Long.toHexString(r.start()));
            }
            starts[k] = r.start();
            ends[k] = r.start() + r.size();
            slots[k] = byStart[k];
            startBySlot[byStart[k]] = r.start();
        }
    }

    /** The sorted position of the region holding {@code address}, or -1. */
    private int position(long address) {
        int lo = 0;
        int hi = starts.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (address < starts[mid]) {
                hi = mid - 1;
            } else if (address >= ends[mid]) {
                lo = mid + 1;
            } else {
                return mid;
            }
        }
        return -1;
    }

    /**
     * The region (its index as given) holding all {@code length} bytes from {@code address}; throws
     * {@link GuestMemoryException} unless they lie inside one region.
     */
    public int slot(long address, long length) {
        int k = position(address);
        if (k < 0 || length < 0 || length > ends[k] - address) {
            throw new GuestMemoryException(length + " bytes at guest address 0x" + Long.toHexString(address)
                    + " are outside guest memory");
        }
        return slots[k];
    }

    /** The guest-physical start of the region with index {@code slot} (as given). */
    public long start(int slot) {
        return startBySlot[slot];
    }

    /** Bytes from {@code address} to the end of its region; throws if it lies in none. */
    public long remainingAt(long address) {
        int k = position(address);
        if (k < 0) {
            throw new GuestMemoryException("guest address 0x" + Long.toHexString(address) + " is outside guest memory");
        }
        return ends[k] - address;
    }

    /** True if every byte of the range lies in some region (possibly several adjacent ones). */
    public boolean contains(long address, long length) {
        if (length < 0 || address < 0) {
            return false;
        }
        long at = address;
        long left = length;
        while (left > 0) {
            int k = position(at);
            if (k < 0) {
                return false;
            }
            long step = Math.min(ends[k] - at, left);
            at += step;
            left -= step;
        }
        return true;
    }
}
