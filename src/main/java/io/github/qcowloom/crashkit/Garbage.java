package io.github.qcowloom.crashkit;

import java.util.Random;

/**
 * The garbage a torn crash leaves: random bytes where a dropped operation would have written, at or beyond
 * {@code from} only (below it a dropped write leaves the old bytes), and, when {@code inGaps}, in the space a
 * write extended the file over without writing it.
 *
 * <p>{@link CrashMode#TORN} tears everywhere: {@code from} 0, gaps too. {@link CrashMode#TORN_APPENDS} tears only
 * appended space: {@code from} is the file's size at the last completed flush, and gaps read as zeros (holes).
 */
record Garbage(Random random, long from, boolean inGaps) {

    /** Garbage over the part of [offset, offset + length) at or beyond {@link #from}; the file grows to cover it. */
    void tear(StateImage s, long offset, long length) {
        long start = Math.max(offset, from);
        long end = offset + length;
        if (start < end) {
            fillGap(s, start);
            s.garbage(start, end - start, random);
        }
    }

    /**
     * Before an operation that extends the file to {@code end}: garbage over the space between the file's end and
     * {@code end} when {@link #inGaps}, else nothing (the operation's own extension leaves zeros there).
     */
    void fillGap(StateImage s, long end) {
        long size = s.size();
        if (inGaps && end > size) {
            s.garbage(size, end - size, random);
        }
    }
}
