package io.github.qcowloom.image;

import java.io.IOException;

/**
 * A dirty bitmap's bits, searched for runs: bit {@code i} covers the guest's bytes {@code [i << granularityBits(),
 * (i + 1) << granularityBits())}. Either a bitmap as stored ({@link BitmapBits}) or one a read-write open keeps
 * (its live bits).
 */
public interface DirtyBits {
    int granularityBits();

    /** How many bits there are: one per granule of the disk, the last one partial. */
    long count();

    /** The first set bit in {@code [from, limit)}, or {@code limit} if there is none. */
    long nextSet(long from, long limit) throws IOException;

    /** The first clear bit in {@code [from, limit)}, or {@code limit} if there is none. */
    long nextClear(long from, long limit) throws IOException;

    /** These bits for one more thread: a reader that keeps a cursor of its own where it needs one. */
    DirtyBits reader();
}
