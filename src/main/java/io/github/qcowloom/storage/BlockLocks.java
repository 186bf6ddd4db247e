package io.github.qcowloom.storage;

import java.util.concurrent.locks.ReentrantLock;

/**
 * Striped locks over block indexes. A range's stripes are always taken in ascending stripe order, so two
 * ranges that share stripes (also through wrap-around) cannot deadlock.
 */
final class BlockLocks {
    private final ReentrantLock[] stripes;

    /** {@code count} stripes; must be a power of two. */
    BlockLocks(int count) {
        if (Integer.bitCount(count) != 1) {
            throw new IllegalArgumentException("stripe count must be a power of two: " + count);
        }
        stripes = new ReentrantLock[count];
        for (int i = 0; i < count; i++) {
            stripes[i] = new ReentrantLock();
        }
    }

    /** Locks every stripe of blocks {@code [first, end)}; pair with {@link #unlock} of the same range. */
    void lock(long first, long end) {
        int n = stripes.length;
        if (end - first >= n) {
            for (ReentrantLock stripe : stripes) {
                stripe.lock();
            }
            return;
        }
        // The stripes form one ring segment [start, start + count): take its wrapped part first, it is lower.
        int start = (int) (first & (n - 1));
        int count = (int) (end - first);
        for (int i = 0; i < start + count - n; i++) {
            stripes[i].lock();
        }
        for (int i = start; i < Math.min(start + count, n); i++) {
            stripes[i].lock();
        }
    }

    /** Unlocks what {@link #lock} of the same range took. */
    void unlock(long first, long end) {
        int n = stripes.length;
        if (end - first >= n) {
            for (ReentrantLock stripe : stripes) {
                stripe.unlock();
            }
            return;
        }
        for (long block = first; block < end; block++) {
            stripes[(int) (block & (n - 1))].unlock();
        }
    }
}
