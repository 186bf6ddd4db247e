package io.github.qcowloom.crashkit;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What a workload wrote to the guest disk, per 512-byte sector, and so which values each sector may legally hold
 * after a crash: its value at the last durable guest flush, or any later write, discard or write-zeroes.
 *
 * <p>Every write gets its own id, and {@link #write} returns data in which each sector carries that id and its
 * own sector number: a sector showing another sector's data, metadata or a freed cluster's old data is caught.
 * Id 0 means zeroes. Not thread-safe: one workload thread records its requests.
 *
 * <p>Internal snapshots (invariant f) are recorded once their operation returns, with the host storage's flush
 * count before and after it ({@link CrashSimStorage#flushCount()}); names must be unique within a workload.
 * {@link #snapshotCreated} keeps each sector's value at that moment as the snapshot's contents: creation flushes
 * everything first, so every earlier write is in the snapshot. {@link #snapshotApplied} records the snapshot's
 * contents as the disk's new values, {@link #snapshotDeleted} the deletion. Each of the three makes everything
 * before it durable and so counts as a guest flush once it returns (the history cannot tell when inside the
 * operation that happened, so crash states during it may still show a value an earlier write replaced).
 */
public final class GuestHistory {
    /** The sector size of the model. */
    public static final int SECTOR = 512;
    /** Length of the pseudo-random run a pattern repeats. */
    private static final int RUN = 32;
    /** A zero sector, for comparing; never handed out. */
    private static final byte[] ZEROES = new byte[SECTOR];

    // Per sector: entries (guest flushes completed before the request << 32 | value id), in request order.
    private final long[][] entries;
    private final int[] counts;
    private long[] flushMarks = new long[8];
    private int guestFlushes;
    private int nextId = 1;
    /** Every virtual size the workload gave the disk; after a crash the disk has one of them (invariant g). */
    private final java.util.Set<Long> sizes = new java.util.LinkedHashSet<>();
    private long currentSize;
    /** Snapshots by name, in creation order. */
    private final Map<String, SnapshotRecord> snapshots = new LinkedHashMap<>();
    private final List<ApplyRecord> applies = new ArrayList<>();

    /**
     * One snapshot: the value id of each modelled sector at its creation, the virtual size then, and the host flush
     * counts around its create and (once deleted, else -1) its delete.
     */
    record SnapshotRecord(String name, int[] contents, long size, long createdBefore, long createdAfter,
            long deletedBefore, long deletedAfter) {
        boolean deleted() {
            return deletedAfter >= 0;
        }

        /** Whether the crash state must list it: created durably and not being deleted yet. */
        boolean mustExist(long durableFlushes) {
            return createdAfter <= durableFlushes && (!deleted() || durableFlushes < deletedBefore);
        }

        /** Whether the crash state may list it: its create had begun and its delete is not durable. */
        boolean mayExist(long durableFlushes) {
            return createdBefore <= durableFlushes && (!deleted() || durableFlushes < deletedAfter);
        }
    }

    /**
     * One apply of snapshot {@code name}: per sector how many entries the history held before it (the old disk's
     * values) and the value it applied; a crash state with {@code before <= durable flushes < after} fell inside it.
     */
    record ApplyRecord(String name, int[] entriesBefore, int[] applied, long before, long after) {
        boolean inFlight(long durableFlushes) {
            return before <= durableFlushes && durableFlushes < after;
        }
    }

    /** A history of a guest disk of {@code guestSize} bytes (a multiple of 512), all zero at the start. */
    public GuestHistory(long guestSize) {
        if (guestSize % SECTOR != 0 || guestSize / SECTOR > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("guest size must be a multiple of 512: " + guestSize);
        }
        int sectors = (int) (guestSize / SECTOR);
        this.entries = new long[sectors][];
        this.counts = new int[sectors];
        this.sizes.add(guestSize);
        this.currentSize = guestSize;
    }

    /**
     * Records a resize of the disk. Sectors past the original size are not modelled: a grown disk must read
     * as zeroes there, as nothing is written to them.
     */
    public void resized(long newSize) {
        sizes.add(newSize);
        currentSize = newSize;
    }

    /** Every size the disk has had. */
    public java.util.Set<Long> sizes() {
        return java.util.Set.copyOf(sizes);
    }

    /** Number of sectors modelled. */
    public int sectors() {
        return counts.length;
    }

    /** Records a write of {@code length} bytes at {@code offset} (sector-aligned) and returns the data to write. */
    public byte[] write(long offset, int length) {
        int id = nextId++;
        byte[] data = new byte[length];
        int first = firstSector(offset, length);
        for (int i = 0; i < length / SECTOR; i++) {
            System.arraycopy(pattern(id, first + i), 0, data, i * SECTOR, SECTOR);
            record(first + i, id);
        }
        return data;
    }

    /** Records that {@code length} bytes at {@code offset} (sector-aligned) now read as zeroes. */
    public void zero(long offset, long length) {
        int first = firstSector(offset, length);
        for (long i = 0; i < length / SECTOR; i++) {
            record((int) (first + i), 0);
        }
    }

    /**
     * Records a completed guest flush; {@code storageFlushes} is the host storage's count of completed flushes
     * when it returned ({@link CrashSimStorage#flushCount()}).
     */
    public void flushed(long storageFlushes) {
        if (guestFlushes == flushMarks.length) {
            flushMarks = Arrays.copyOf(flushMarks, guestFlushes * 2);
        }
        flushMarks[guestFlushes++] = storageFlushes;
    }

    /** Ids sector {@code sector} may hold in a crash state in which {@code durableFlushes} host flushes completed. */
    public Set<Integer> legalValues(int sector, long durableFlushes) {
        int durableGuest = durableGuestFlushes(durableFlushes);
        Set<Integer> legal = new LinkedHashSet<>();
        int durableValue = 0;
        for (int k = 0; k < counts[sector]; k++) {
            long e = entries[sector][k];
            if ((e >>> 32) < durableGuest) {
                durableValue = (int) e;
            } else {
                legal.add((int) e);
            }
        }
        legal.add(durableValue);
        return legal;
    }

    /**
     * Whether {@code id} is among {@link #legalValues(int, long)}, without building the set, counting only the
     * sector's first {@code upTo} entries ({@link #entryCount} for all; fewer for the disk as it was earlier).
     */
    boolean isLegal(int sector, long durableFlushes, int upTo, int id) {
        int durableGuest = durableGuestFlushes(durableFlushes);
        int durableValue = 0;
        for (int k = 0; k < upTo; k++) {
            long e = entries[sector][k];
            if ((e >>> 32) < durableGuest) {
                durableValue = (int) e;
            } else if ((int) e == id) {
                return true;
            }
        }
        return durableValue == id;
    }

    /** Entries recorded before this many guest flushes are durable in a state with {@code durableFlushes}. */
    private int durableGuestFlushes(long durableFlushes) {
        // The marks never decrease: count those at most durableFlushes by binary search.
        int lo = 0;
        int hi = guestFlushes;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (flushMarks[mid] <= durableFlushes) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    /** The number of entries recorded for {@code sector} so far. */
    int entryCount(int sector) {
        return counts[sector];
    }

    /**
     * Records that snapshot {@code name} was created: {@code flushesBefore} and {@code flushesAfter} are the host
     * storage's completed flushes when the create was called and when it returned.
     */
    public void snapshotCreated(String name, long flushesBefore, long flushesAfter) {
        if (snapshots.containsKey(name)) {
            throw new IllegalArgumentException("snapshot names must be unique within a workload: " + name);
        }
        int[] contents = new int[sectors()];
        for (int s = 0; s < contents.length; s++) {
            contents[s] = counts[s] == 0 ? 0 : (int) entries[s][counts[s] - 1];
        }
        snapshots.put(name, new SnapshotRecord(name, contents, currentSize, flushesBefore, flushesAfter, -1, -1));
        flushed(flushesAfter);
    }

    /** Records that snapshot {@code name} was deleted (host flush counts as for {@link #snapshotCreated}). */
    public void snapshotDeleted(String name, long flushesBefore, long flushesAfter) {
        SnapshotRecord r = live(name);
        snapshots.put(name, new SnapshotRecord(name, r.contents(), r.size(), r.createdBefore(), r.createdAfter(),
                flushesBefore, flushesAfter));
        flushed(flushesAfter);
    }

    /**
     * Records that snapshot {@code name} was applied (QEMU's goto): every sector now holds the snapshot's value and
     * the disk has the snapshot's size. A crash during the apply leaves the old disk or the snapshot's, whole.
     */
    public void snapshotApplied(String name, long flushesBefore, long flushesAfter) {
        SnapshotRecord r = live(name);
        applies.add(new ApplyRecord(name, counts.clone(), r.contents().clone(), flushesBefore, flushesAfter));
        for (int s = 0; s < sectors(); s++) {
            record(s, r.contents()[s]);
        }
        resized(r.size());
        flushed(flushesAfter);
    }

    /** Every snapshot the workload created, deleted ones included, in creation order. */
    List<SnapshotRecord> snapshots() {
        return List.copyOf(snapshots.values());
    }

    /** The snapshot created as {@code name}, or null. */
    SnapshotRecord snapshot(String name) {
        return snapshots.get(name);
    }

    /** The apply a crash state with {@code durableFlushes} flushes fell inside, or null. */
    ApplyRecord applyInFlight(long durableFlushes) {
        for (ApplyRecord a : applies) {
            if (a.inFlight(durableFlushes)) {
                return a;
            }
        }
        return null;
    }

    private SnapshotRecord live(String name) {
        SnapshotRecord r = snapshots.get(name);
        if (r == null || r.deleted()) {
            throw new IllegalArgumentException("no snapshot " + name + " was created, or it was deleted");
        }
        return r;
    }

    /**
     * The 512 bytes write {@code id} puts in sector {@code sector} (zeroes for id 0): the id and the sector, over
     * a 32-byte pseudo-random run of their own, repeated. Nothing else looks like it, and it compresses, so that
     * compressed writes store it compressed.
     */
    public static byte[] pattern(int id, long sector) {
        byte[] b = new byte[SECTOR];
        if (id == 0) {
            return b;
        }
        long x = (id * 0x9E3779B97F4A7C15L) ^ (sector * 0xC2B2AE3D27D4EB4FL) | 1;
        for (int i = 0; i < RUN; i += 8) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            for (int k = 0; k < 8; k++) {
                b[i + k] = (byte) (x >>> (8 * k));
            }
        }
        for (int i = RUN; i < SECTOR; i++) {
            b[i] = b[i - RUN];
        }
        putInt(b, 0, id);
        putInt(b, 4, (int) sector);
        return b;
    }

    /**
     * The id whose pattern {@code data} (512 bytes read from sector {@code sector}) is, or a description of what
     * it is instead.
     */
    public static String identify(byte[] data, long sector) {
        int id = getInt(data, 0);
        int from = getInt(data, 4);
        if (id == 0) {
            return Arrays.equals(data, new byte[SECTOR]) ? "zeroes" : "bytes of no write (metadata, stale or garbage)";
        }
        if (Arrays.equals(data, pattern(id, from))) {
            return from == sector ? "write #" + id : "write #" + id + " of sector " + from + " (another sector)";
        }
        return "bytes of no write (metadata, stale or garbage), starting " + HexFormat.of().formatHex(data, 0, 16);
    }

    /** The id {@code data} holds for sector {@code sector}, or -1 if it is no write's data for that sector. */
    public static int idOf(byte[] data, long sector) {
        int id = getInt(data, 0);
        if (id == 0) {
            return Arrays.equals(data, ZEROES) ? 0 : -1;
        }
        return getInt(data, 4) == sector && Arrays.equals(data, pattern(id, sector)) ? id : -1;
    }

    private void record(int sector, int id) {
        if (entries[sector] == null) {
            entries[sector] = new long[4];
        } else if (counts[sector] == entries[sector].length) {
            entries[sector] = Arrays.copyOf(entries[sector], counts[sector] * 2);
        }
        entries[sector][counts[sector]++] = (long) guestFlushes << 32 | id;
    }

    private int firstSector(long offset, long length) {
        if (offset % SECTOR != 0 || length % SECTOR != 0 || offset < 0 || offset + length > (long) sectors() * SECTOR) {
            throw new IllegalArgumentException("request must be sector-aligned and inside the disk: " + length
                    + " bytes at " + offset);
        }
        return (int) (offset / SECTOR);
    }

    private static void putInt(byte[] b, int at, int v) {
        for (int k = 0; k < 4; k++) {
            b[at + k] = (byte) (v >>> (24 - 8 * k));
        }
    }

    private static int getInt(byte[] b, int at) {
        int v = 0;
        for (int k = 0; k < 4; k++) {
            v = v << 8 | (b[at + k] & 0xff);
        }
        return v;
    }
}
