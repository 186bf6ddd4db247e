package io.github.qcowloom.storage;

import java.io.IOException;
import java.util.Map;
import java.util.TreeMap;

/**
 * What one ordering step has written and must make durable before its next write: ranges added as they are written,
 * merged where they touch, then made durable run by run with {@link Storage#flushRange}, not with the whole file's
 * sync. Not thread-safe: one step's own list.
 */
public final class RangesToFlush {
    /** Start to end of each run, disjoint and not touching. */
    private final TreeMap<Long, Long> runs = new TreeMap<>();

    /** Adds {@code [position, position + length)}. */
    public RangesToFlush add(long position, long length) {
        if (length <= 0) {
            return this;
        }
        long start = position;
        long end = position + length;
        Map.Entry<Long, Long> before = runs.floorEntry(start);
        if (before != null && before.getValue() >= start) {
            start = before.getKey();
            end = Math.max(end, before.getValue());
        }
        for (Map.Entry<Long, Long> next = runs.ceilingEntry(start); next != null && next.getKey() <= end;
                next = runs.ceilingEntry(start)) {
            end = Math.max(end, next.getValue());
            runs.remove(next.getKey());
        }
        runs.put(start, end);
        return this;
    }

    /** The number of runs: the syncs {@link #flush} makes. */
    public int runs() {
        return runs.size();
    }

    /** Makes every run durable on {@code storage}. */
    public void flush(Storage storage) throws IOException {
        for (Map.Entry<Long, Long> run : runs.entrySet()) {
            storage.flushRange(run.getKey(), run.getValue() - run.getKey());
        }
    }
}
