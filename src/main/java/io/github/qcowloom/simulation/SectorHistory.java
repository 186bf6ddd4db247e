package io.github.qcowloom.simulation;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.locks.ReentrantLock;

/**
 * What concurrent requests did to a guest disk, per 512-byte sector, and the oracle that judges every read
 * afterwards: a sector read must show a value left by a write that completed before the read began and that no
 * later write completed before the read began replaced, or by a write that overlapped the read in time. That is an
 * atomic register per sector, the guarantee a disk gives.
 *
 * <p>Time is a logical clock: {@link #tick()} before a request and after it. Every write carries its own id, and
 * {@link #fill} gives each sector that id and its own sector number, so a sector showing another sector's data,
 * metadata or a freed cluster's old contents is caught; id 0 is zeroes, {@link #BACKING} the backing file's
 * pattern. Reads are recorded as they return and judged in {@link #violations()}, once every request's outcome is
 * known. Safe for concurrent use; under the {@link SimScheduler} the lock is never contended.
 *
 * <p>Lock discipline: {@link #lock} guards every list; no I/O or callback runs under it.
 */
public final class SectorHistory {
    /** Bytes per modelled sector. */
    public static final int SECTOR = 512;
    /** The value of a sector the backing file's pattern fills (see {@link #fill}). */
    public static final int BACKING = -1;
    /** A sector whose bytes match no pattern: metadata, another sector's data, garbage. */
    public static final int FOREIGN = Integer.MIN_VALUE;

    private final ReentrantLock lock = new ReentrantLock();
    private final boolean backing;
    private long clock;
    private int nextId = 1;
    // Guarded by lock.
    /** Every write-like request, as a range of sectors (a snapshot apply covers every sector). */
    private final List<Put> puts = new ArrayList<>();
    private final List<Get> gets = new ArrayList<>();
    private final List<Capture> snapshots = new ArrayList<>();
    private final List<String> violations = new ArrayList<>();
    private final List<WriteSpan> writes = new ArrayList<>();
    /** Discards and zero writes: they may leave no data behind for a shrink to refuse. */
    private final List<WriteSpan> removals = new ArrayList<>();
    private final List<Resize> resizes = new ArrayList<>();

    /**
     * One request's effect on sectors {@code [first, last)}: the value it may leave ({@code from}: the values a
     * snapshot captured instead); {@code mayKeep}: or the value before it.
     */
    private record Put(long start, long end, long first, long last, int value, Capture from, boolean mayKeep) {
        boolean covers(long sector) {
            return first <= sector && sector < last;
        }
    }

    private record Get(long start, long end, long sector, int seen, String what) {
    }

    /**
     * A snapshot's contents, as the model knows them: what each sector held at some moment of the creation that ran
     * over {@code [start, end]}.
     */
    public record Capture(long start, long end) {
    }

    private record WriteSpan(long start, long end, long firstSector, long endSector, String what) {
    }

    private record Resize(long start, long end, long newSize, long cutFrom, boolean shrink) {
    }

    /** A history of a disk whose sectors start as zeroes, or as the backing file's pattern if {@code backing}. */
    public SectorHistory(boolean backing) {
        this.backing = backing;
    }

    /** The logical clock's next value: call before a request is issued and after it returns. */
    public long tick() {
        lock.lock();
        try {
            return ++clock;
        } finally {
            lock.unlock();
        }
    }

    /** A fresh id for a write's data. */
    public int newId() {
        lock.lock();
        try {
            return nextId++;
        } finally {
            lock.unlock();
        }
    }

    /** Fills {@code dst} (sector-sized) with write {@code id}'s pattern for the sectors from {@code firstSector}. */
    public static void fill(ByteBuffer dst, long firstSector, int id) {
        byte[] sector = new byte[SECTOR];
        for (long s = firstSector; dst.remaining() >= SECTOR; s++) {
            pattern(sector, s, id);
            dst.put(sector);
        }
    }

    private static void pattern(byte[] out, long sector, int id) {
        if (id == 0) {
            java.util.Arrays.fill(out, (byte) 0);
            return;
        }
        ByteBuffer.wrap(out).putInt(0, id).putLong(4, sector);
        for (int i = 12; i < SECTOR; i++) {
            out[i] = (byte) (id * 7 + sector * 13 + i);
        }
    }

    /** The value id a sector's bytes carry, or {@link #FOREIGN}. */
    public static int decode(ByteBuffer src, long sector) {
        byte[] b = new byte[SECTOR];
        src.get(b);
        int id = ByteBuffer.wrap(b).getInt(0);
        if (id == 0 && ByteBuffer.wrap(b).getLong(4) == 0) {
            for (byte x : b) {
                if (x != 0) {
                    return FOREIGN;
                }
            }
            return 0;
        }
        byte[] expected = new byte[SECTOR];
        pattern(expected, sector, id);
        return java.util.Arrays.equals(b, expected) ? id : FOREIGN;
    }

    /** A write of {@code id}'s pattern (0: zeroes) over {@code count} sectors from {@code first} that returned OK. */
    public void wrote(long start, long end, long first, long count, int id, String what) {
        lock.lock();
        try {
            puts.add(new Put(start, end, first, first + count, id, null, false));
            (id == 0 ? removals : writes).add(new WriteSpan(start, end, first, first + count, what));
        } finally {
            lock.unlock();
        }
    }

    /**
     * A discard that returned OK: each sector may keep its value or read as zeroes or as the backing file (a
     * discard is advisory, and QEMU discards only whole clusters).
     */
    public void discarded(long start, long end, long first, long count) {
        mayZero(start, end, first, count, backing, "discard");
    }

    /**
     * A zero write that may have zeroed only part of its range (a fast one refused part way): each sector keeps its
     * value or reads as zeroes.
     */
    public void zeroedInPart(long start, long end, long first, long count) {
        mayZero(start, end, first, count, false, "zeroes in part");
    }

    /** Each sector keeps its value or reads as zeroes, or with {@code orBacking} as the backing file. */
    private void mayZero(long start, long end, long first, long count, boolean orBacking, String what) {
        lock.lock();
        try {
            puts.add(new Put(start, end, first, first + count, 0, null, true));
            if (orBacking) {
                puts.add(new Put(start, end, first, first + count, BACKING, null, true));
            }
            removals.add(new WriteSpan(start, end, first, first + count, what));
        } finally {
            lock.unlock();
        }
    }

    /** The disk's size went from {@code oldSize} to {@code newSize} bytes; {@code cutFrom}: first whole cluster cut. */
    public void resized(long start, long end, long oldSize, long newSize, long cutFrom) {
        lock.lock();
        try {
            long lo = Math.min(oldSize, newSize) / SECTOR;
            long hi = Math.max(oldSize, newSize) / SECTOR;
            // What a shrink cuts off is gone, and a grown range reads as zeroes: a zero write either way.
            puts.add(new Put(start, end, lo, hi, 0, null, false));
            resizes.add(new Resize(start, end, newSize, cutFrom, newSize < oldSize));
        } finally {
            lock.unlock();
        }
    }

    /** A snapshot created over {@code [start, end]}; returns what {@link #applied} restores. */
    public Capture snapshotCreated(long start, long end) {
        lock.lock();
        try {
            Capture s = new Capture(start, end);
            snapshots.add(s);
            return s;
        } finally {
            lock.unlock();
        }
    }

    /** The snapshot {@code capture} was applied over {@code [start, end]}: every sector is as it captured it. */
    public void applied(long start, long end, Capture capture) {
        lock.lock();
        try {
            puts.add(new Put(start, end, 0, Long.MAX_VALUE, 0, capture, false));
        } finally {
            lock.unlock();
        }
    }

    /** A read over {@code [start, end]} returned {@code data} for the sectors from {@code first}. */
    public void read(long start, long end, long first, ByteBuffer data, String what) {
        List<Get> seen = new ArrayList<>();
        ByteBuffer b = data.duplicate();
        for (long s = first; b.remaining() >= SECTOR; s++) {
            seen.add(new Get(start, end, s, decode(b, s), what));
        }
        lock.lock();
        try {
            gets.addAll(seen);
        } finally {
            lock.unlock();
        }
    }

    /** Records a failure the caller found itself (an unexpected exception, say). */
    public void violation(String message) {
        lock.lock();
        try {
            violations.add(message);
        } finally {
            lock.unlock();
        }
    }

    /** Judges every recorded read: the messages of those that saw a value no atomic register could hold. */
    public List<String> violations() {
        lock.lock();
        try {
            List<String> out = new ArrayList<>(violations);
            for (Get g : gets) {
                Set<Integer> allowed = allowed(g.sector(), g.start(), g.end());
                if (!allowed.contains(g.seen())) {
                    out.add(String.format("%s: sector %d read [%d,%d] saw %s, allowed %s", g.what(), g.sector(),
                            g.start(), g.end(), name(g.seen()), allowed));
                }
            }
            // A shrink that succeeded found nothing in the clusters it cut: a write there that also succeeded and
            // overlapped it cannot have come first (unless a discard or zero write may have removed its data in
            // between), and coming second it had to fail (unless a resize that may have come after the shrink grew
            // the disk back over it before the write ended).
            for (Resize r : resizes) {
                for (WriteSpan w : writes) {
                    boolean overlap = w.start() < r.end() && r.start() < w.end();
                    if (r.shrink() && overlap && w.endSector() * SECTOR > r.cutFrom()
                            && !grownBack(r, w) && !removedBetween(w, r)) {
                        out.add(String.format("%s [%d,%d] of sectors [%d,%d) succeeded past a shrink to %d bytes"
                                + " [%d,%d] that it overlapped", w.what(), w.start(), w.end(), w.firstSector(),
                                w.endSector(), r.newSize(), r.start(), r.end()));
                    }
                }
            }
            return out;
        } finally {
            lock.unlock();
        }
    }

    private boolean removedBetween(WriteSpan w, Resize shrink) {
        long firstCut = Math.max(w.firstSector(), shrink.cutFrom() / SECTOR);
        for (WriteSpan d : removals) {
            if (d.firstSector() < w.endSector() && firstCut < d.endSector() && d.end() > w.start()
                    && d.start() < shrink.end()) {
                return true;
            }
        }
        return false;
    }

    private boolean grownBack(Resize shrink, WriteSpan w) {
        for (Resize g : resizes) {
            if (!g.shrink() && g.newSize() >= w.endSector() * SECTOR && g.end() > shrink.start()
                    && g.start() < w.end()) {
                return true;
            }
        }
        return false;
    }

    private static String name(int id) {
        return id == FOREIGN ? "foreign bytes" : id == BACKING ? "backing" : String.valueOf(id);
    }

    /**
     * The values sector {@code s} may show to a read over {@code [rs, re]}: those of writes that began before the
     * read ended and that no write completed before the read began replaced.
     */
    private Set<Integer> allowed(long s, long rs, long re) {
        List<Put> list = new ArrayList<>();
        for (Put p : puts) {
            if (p.covers(s) && p.start() < re) {
                list.add(p);
            }
        }
        // The latest start among the definite writes that completed before the read began: whatever completed
        // before that start was replaced.
        long replacedBefore = Long.MIN_VALUE;
        for (Put p : list) {
            if (!p.mayKeep() && p.end() < rs) {
                replacedBefore = Math.max(replacedBefore, p.start());
            }
        }
        Set<Integer> allowed = new HashSet<>();
        if (replacedBefore == Long.MIN_VALUE) {
            allowed.add(backing ? BACKING : 0);
        }
        for (Put p : list) {
            if (p.start() < re && p.end() >= replacedBefore) {
                if (p.from() != null) {
                    allowed.addAll(allowed(s, p.from().start(), p.from().end()));
                } else {
                    allowed.add(p.value());
                }
            }
        }
        return allowed;
    }
}
