package io.github.qcowloom.alloc;

import io.github.qcowloom.api.ImageOptions;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.BitmapTableEntry;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.ClusterType;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.RefcountCodec;
import io.github.qcowloom.format.ReftableEntry;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * The reference recount: counts each host cluster's references by walking every table (QEMU's calculate_refcounts).
 *
 * <p>It only reads. The corruptions QEMU's walk reports (reserved bits, misaligned offsets, references a cluster
 * or more past the end of the file, bad subcluster bitmaps, refcount overflow) are collected on the way.
 *
 * <p>Its memory follows what the tables reference, not the file's length ({@link ClusterCounts}), and is bounded:
 * a recount that would need more is refused with an {@link ImageTooLargeException}.
 */
public final class ReferenceCount {
    private final Header header;
    private final long fileLength;
    private final int clusterBits;
    private final long clusterSize;
    private final long refcountMax;
    /** References per cluster; one slot past the file's last cluster for a reference that overhangs it. */
    private final ClusterCounts counts;
    /** Clusters counted so far: the file's clusters, plus one if a reference overhangs the end. */
    private int clusters;
    /**
     * The walk's messages, the first {@link #MAX_PROBLEM_LINES} of them: a small image can repeat one broken table
     * under 65536 snapshots and so ask for millions of lines (qemu-img prints them all). The count stays exact.
     */
    private final List<String> problems = new ArrayList<>();
    /** At most this many lines kept: {@link #MAX_PROBLEM_LINES} but in tests. */
    private final int keptLines;
    private long problemsNotKept;
    private long corruptions;
    /**
     * How many walks the current one stands for: 1, except once no more lines are kept, when a snapshot tree shared
     * by N snapshots, or a snapshot's L2 table named by N L1 entries, is walked once with weight N (see
     * {@link #walkSnapshots} and {@link #checkL1}).
     */
    private long weight = 1;
    private boolean refblocksBroken;
    /** Clusters counted as the refcount structures themselves (reftable, sound refblocks): free after a rebuild. */
    private final java.util.List<Long> refcountStructure = new java.util.ArrayList<>();
    private long[] reftable = new long[0];
    private long[] activeL1 = new long[0];
    /** The NORMAL and ZERO_ALLOC L2 entries of the active tree, for the COPIED check. */
    private long[] activeData = new long[64];
    private int activeDataCount;

    private ReferenceCount(Header header, long fileLength, long memoryBound, int keptLines)
            throws ImageTooLargeException {
        this.keptLines = keptLines;
        this.header = header;
        this.fileLength = fileLength;
        this.clusterBits = header.clusterBits();
        this.clusterSize = header.clusterSize();
        long max = new RefcountCodec(header.refcountOrder()).max();
        this.refcountMax = max == -1 ? Long.MAX_VALUE : max;
        long fileClusters = (fileLength + clusterSize - 1) >>> clusterBits;
        // QEMU refuses to check an image of more than INT_MAX clusters (qcow2_check_refcounts).
        if (fileClusters >= Integer.MAX_VALUE - 8) {
            throw new ImageTooLargeException("Number of clusters exceeds INT_MAX: " + fileClusters);
        }
        this.clusters = (int) fileClusters;
        this.counts = new ClusterCounts(clusters + 1L, refcountMax, memoryBound);
        counts.charge(8L * activeData.length);
    }

    /** What a recount may allocate when nothing else is said: {@link ImageOptions#recountMemoryLimit()}. */
    public static long defaultMemoryBound() {
        return ImageOptions.defaults().recountMemoryLimit();
    }

    /**
     * Counts the references of the image in {@code file}: header, active and snapshot trees, snapshot table,
     * reftable, refblocks and the bitmap directory with its bitmap tables. With an external data file the data
     * clusters live in the other file and are not counted.
     */
    public static ReferenceCount compute(Storage file, Header header, List<Snapshot> snapshots) throws IOException {
        return compute(file, header, snapshots, snapshots.isEmpty() ? 0 : SnapshotTable.encodedLength(snapshots));
    }

    /**
     * As {@link #compute(Storage, Header, List)}, with the bytes the snapshot table spans in the file (QEMU's
     * snapshots_size): after a repairing read cut extra data, the entries encode shorter than the table on disk.
     */
    public static ReferenceCount compute(Storage file, Header header, List<Snapshot> snapshots,
            long snapshotTableSize) throws IOException {
        return compute(file, header, snapshots, snapshotTableSize, defaultMemoryBound());
    }

    /**
     * As {@link #compute(Storage, Header, List, long)}, allocating at most about {@code memoryBound} bytes.
     *
     * @throws ImageTooLargeException if the recount would need more memory than that
     */
    public static ReferenceCount compute(Storage file, Header header, List<Snapshot> snapshots,
            long snapshotTableSize, long memoryBound) throws IOException {
        return compute(file, header, snapshots, snapshotTableSize, memoryBound, MAX_PROBLEM_LINES);
    }

    /** As above, keeping at most {@code keptLines} lines (tests vary it to compare grouped and plain walks). */
    static ReferenceCount compute(Storage file, Header header, List<Snapshot> snapshots, long snapshotTableSize,
            long memoryBound, int keptLines) throws IOException {
        ReferenceCount rc = new ReferenceCount(header, file.size(), memoryBound, keptLines);
        rc.walk(file, snapshots, snapshotTableSize);
        return rc;
    }

    /** Clusters covered: the file's length in clusters, plus one when a reference overhangs the end. */
    public long clusters() {
        return clusters;
    }

    /** References to host cluster {@code cluster}, 0 beyond {@link #clusters()}. */
    public long references(long cluster) {
        return cluster >= 0 && cluster < clusters ? counts.get(cluster) : 0;
    }

    /** One cluster of {@link #forEachCandidate}. */
    @FunctionalInterface
    public interface ClusterAction {
        void accept(long cluster) throws IOException;
    }

    /**
     * Calls {@code action} with each cluster below {@link #clusters()}, in order, that has references or that a
     * reftable entry of {@code table} covers. Every cluster left out has no reference and a stored refcount of 0,
     * so comparing it finds nothing: in a sparse file the long tail that nothing references is skipped at the
     * cost of a look at each reftable entry and counter page, not of each cluster.
     */
    public void forEachCandidate(RefcountTable table, ClusterAction action) throws IOException {
        long counted = counts.nextCounted(0);
        long covered = table.nextCovered(0);
        for (long c = Math.min(counted, covered); c < clusters; c = Math.min(counted, covered)) {
            action.accept(c);
            c++;
            if (counted < c) {
                counted = counts.nextCounted(c);
            }
            if (covered < c) {
                covered = table.nextCovered(c);
            }
        }
    }

    /** Calls {@code action} with each cluster that has references, in order. */
    public void forEachReferenced(ClusterAction action) throws IOException {
        for (long c = counts.nextCounted(0); c < clusters; c = counts.nextCounted(c + 1)) {
            if (counts.get(c) != 0) {
                action.accept(c);
            }
        }
    }

    /** Most lines the walk keeps; a last line says how many more there were. */
    public static final int MAX_PROBLEM_LINES = 10_000;

    /**
     * What the walk found corrupt, in QEMU's words, one entry per corruption: at most {@link #MAX_PROBLEM_LINES},
     * then one line counting the rest.
     */
    public List<String> problems() {
        if (problemsNotKept == 0) {
            return List.copyOf(problems);
        }
        List<String> out = new ArrayList<>(problems);
        out.add("... and " + problemsNotKept + " more errors like these, not shown");
        return List.copyOf(out);
    }

    /** Corruptions the walk found (QEMU's res->corruptions after calculate_refcounts), at most Integer.MAX_VALUE. */
    public int corruptions() {
        return (int) Math.min(corruptions, Integer.MAX_VALUE);
    }

    /**
     * True if a reftable entry is unusable (reserved bits, misaligned, outside the image) or a refblock is
     * referenced more than once: QEMU then rebuilds the refcount structures (check_refblocks).
     */
    public boolean refblocksBroken() {
        return refblocksBroken;
    }

    /** The clusters the old reftable and its sound refblocks occupy (each counted once by the walk). */
    public java.util.List<Long> refcountStructureClusters() {
        return java.util.List.copyOf(refcountStructure);
    }

    /** The header the walk used. */
    public Header header() {
        return header;
    }

    /**
     * True if the refcount of {@code cluster} is stored in a sound refblock, so that an update neither creates a
     * refblock nor grows the reftable.
     */
    public boolean hasRefblock(long cluster) {
        long index = cluster >>> (clusterBits + 3 - header.refcountOrder());
        if (index >= reftable.length) {
            return false;
        }
        long e = reftable[(int) index];
        long offset = ReftableEntry.refblockOffset(e);
        return offset != 0 && (e & ReftableEntry.RESERVED_MASK) == 0 && (offset & (clusterSize - 1)) == 0
                && (offset >>> clusterBits) < clusters;
    }

    long[] activeL1() {
        return activeL1;
    }

    long[] activeDataEntries() {
        return Arrays.copyOf(activeData, activeDataCount);
    }

    /**
     * The entries of the active tree (L1 entries, then NORMAL and ZERO_ALLOC L2 entries) that have COPIED set on a
     * cluster that, counting every tree, does not have exactly one reference: a write in place there would change
     * what a snapshot sees. Missing flags are not listed (they only make writes copy).
     */
    public List<String> copiedOnShared() {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < activeL1.length; i++) {
            long l2Offset = L1Entry.l2Offset(activeL1[i]);
            if (L1Entry.copied(activeL1[i]) && l2Offset != 0 && references(l2Offset >>> clusterBits) != 1) {
                out.add("L1 entry " + i + " (" + Long.toHexString(activeL1[i]) + ") has COPIED on an L2 table with "
                        + references(l2Offset >>> clusterBits) + " references");
            }
        }
        for (int i = 0; i < activeDataCount && !header.hasDataFile(); i++) {
            long entry = activeData[i];
            long cluster = L2Entry.hostOffset(entry) >>> clusterBits;
            if (L2Entry.copied(entry) && references(cluster) != 1) {
                out.add("L2 entry " + Long.toHexString(entry) + " has COPIED on a cluster with " + references(cluster)
                        + " references");
            }
        }
        return out;
    }

    private void walk(Storage file, List<Snapshot> snapshots, long snapshotTableSize) throws IOException {
        // The header.
        add(0, clusterSize);
        activeL1 = readTable(file, header.l1TableOffset(), header.l1Size());
        checkL1(file, header.l1TableOffset(), header.l1Size(), activeL1, true);

        if (header.hasDataFile() && !snapshots.isEmpty()) {
            corruption(() -> "ERROR " + snapshots.size() + " snapshots in image with data file");
        }
        walkSnapshots(file, snapshots);
        add(header.snapshotsOffset(), snapshotTableSize);

        add(header.refcountTableOffset(), (long) header.refcountTableClusters() << clusterBits);
        for (long c = 0; c < header.refcountTableClusters(); c++) {
            refcountStructure.add((header.refcountTableOffset() >>> clusterBits) + c);
        }
        // The LUKS header's clusters, as QEMU's calculate_refcounts counts them after the reftable.
        Header.CryptoHeaderArea luks = header.cryptoHeader().orElse(null);
        if (luks != null) {
            add(luks.offset(), luks.length());
        }
        reftable = readTable(file, header.refcountTableOffset(),
                (int) (((long) header.refcountTableClusters() << clusterBits) / 8));
        countBitmaps(file);
        checkRefblocks();
    }

    /**
     * Each snapshot's tree, as QEMU walks them, in order. Once no more lines are kept, the rest are grouped by L1
     * table: a corrupt image can point 65536 snapshots at one tree, and walking it once for all of them, each
     * reference and each corruption counted that many times, gives the same counts (refcounts only add up, and
     * saturate at the maximum) in the time of one walk.
     */
    private void walkSnapshots(Storage file, List<Snapshot> snapshots) throws IOException {
        Map<SnapshotTree, Long> rest = new LinkedHashMap<>();
        for (Snapshot sn : snapshots) {
            if ((sn.l1TableOffset() & (clusterSize - 1)) != 0) {
                corruption(() -> "ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_offset=0x"
                        + Long.toHexString(sn.l1TableOffset())
                        + ": L1 table is not cluster aligned; snapshot table entry corrupted");
            } else if (Integer.toUnsignedLong(sn.l1Size()) > Limits.MAX_L1_BYTES / 8) {
                corruption(() -> "ERROR snapshot " + sn.id() + " (" + sn.name() + ") l1_size=0x"
                        + Integer.toHexString(sn.l1Size()) + ": L1 table is too large; snapshot table entry corrupted");
            } else if (sn.l1Size() == 0) {
                continue; // an empty tree counts nothing, not even its table
            } else if (problems.size() < keptLines) {
                checkL1(file, sn.l1TableOffset(), sn.l1Size(), readTable(file, sn.l1TableOffset(), sn.l1Size()),
                        false);
            } else {
                rest.merge(new SnapshotTree(sn.l1TableOffset(), sn.l1Size()), 1L, Long::sum);
            }
        }
        for (Map.Entry<SnapshotTree, Long> tree : rest.entrySet()) {
            SnapshotTree t = tree.getKey();
            weight = tree.getValue();
            try {
                checkL1(file, t.l1Offset(), t.l1Size(), readTable(file, t.l1Offset(), t.l1Size()), false);
            } finally {
                weight = 1;
            }
        }
    }

    /** A snapshot's L1 table: where it is and its entries. */
    private record SnapshotTree(long l1Offset, int l1Size) {
    }

    /**
     * QEMU's check_refcounts_l1: the L1 table of {@code l1Size} entries, each L2 table it points to, and their
     * entries. {@code l1} holds the entries that lie in the file (the rest read as 0).
     */
    private void checkL1(Storage file, long l1Offset, int l1Size, long[] l1, boolean active) throws IOException {
        if (l1Size == 0) {
            return;
        }
        add(l1Offset, Integer.toUnsignedLong(l1Size) * 8);
        // Once no more lines are kept, a snapshot's remaining L2 tables are walked once each, weighted by the L1
        // entries that point to them: a corrupt L1 table over the file's own bytes points thousands of entries at
        // a few dozen clusters. (Not the active tree: its entries feed the COPIED check one by one.)
        long[] toWalk = new long[0];
        int walks = 0;
        byte[] l2 = new byte[(int) clusterSize];
        for (long e : l1) {
            if (e == 0) {
                continue;
            }
            if ((e & L1Entry.RESERVED_MASK) != 0) {
                corruption(() -> "ERROR found L1 entry with reserved bits set: " + Long.toHexString(e));
            }
            long l2Offset = L1Entry.l2Offset(e);
            add(l2Offset, clusterSize);
            if ((l2Offset & (clusterSize - 1)) != 0) {
                corruption(() -> "ERROR l2_offset=" + Long.toHexString(l2Offset)
                        + ": Table is not cluster aligned; L1 entry corrupted");
            }
            if (l2Offset >= fileLength) {
                // Past the end it reads as zeroes: unallocated entries that count nothing and are all valid. Not
                // walking them keeps an L1 table full of such entries as quick as QEMU's check of it.
                continue;
            }
            if (!active && problems.size() >= keptLines) {
                if (toWalk.length == 0) {
                    counts.charge(8L * l1.length);
                    toWalk = new long[l1.length];
                }
                toWalk[walks++] = l2Offset;
                continue;
            }
            file.readFully(ByteBuffer.wrap(l2), l2Offset);
            // QEMU's check_oflag_copied passes over an L1 entry whose offset is 0 (the header read as an L2 table):
            // its entries are counted, not checked for COPIED.
            checkL2(l2, active && l2Offset != 0);
        }
        Arrays.sort(toWalk, 0, walks);
        long outer = weight;
        for (int i = 0; i < walks;) {
            int same = i;
            while (same < walks && toWalk[same] == toWalk[i]) {
                same++;
            }
            file.readFully(ByteBuffer.wrap(l2), toWalk[i]);
            weight = outer * (same - i);
            try {
                checkL2(l2, false);
            } finally {
                weight = outer;
            }
            i = same;
        }
        counts.release(8L * toWalk.length);
    }

    /** QEMU's check_refcounts_l2: counts data and compressed clusters, reports malformed entries. */
    private void checkL2(byte[] l2, boolean active) throws ImageTooLargeException {
        boolean extended = header.extendedL2();
        boolean dataFile = header.hasDataFile();
        int entrySize = header.l2EntrySize();
        for (int pos = 0; pos + entrySize <= l2.length; pos += entrySize) {
            long entry = Bytes.getLong(l2, pos);
            long bitmap = extended ? Bytes.getLong(l2, pos + 8) : 0;
            ClusterType type = L2Entry.type(entry, extended, dataFile);
            if (type != ClusterType.COMPRESSED && (entry & L2Entry.RESERVED_MASK) != 0) {
                corruption(() -> "ERROR found l2 entry with reserved bits set: " + Long.toHexString(entry));
            }
            switch (type) {
                case COMPRESSED -> checkCompressed(entry, bitmap, pos / entrySize);
                case NORMAL, ZERO_ALLOC -> {
                    long offset = L2Entry.hostOffset(entry);
                    if (((bitmap >>> 32) & bitmap) != 0) {
                        corruption(() -> "ERROR offset=" + Long.toHexString(offset)
                                + ": Allocated cluster has corrupted subcluster allocation bitmap");
                    }
                    if ((offset & (clusterSize - 1)) != 0) {
                        boolean data = extended ? (bitmap & L2Entry.BITMAP_ALLOC_MASK) != 0
                                : (entry & L2Entry.ZERO) == 0;
                        corruption(() -> "ERROR offset=" + Long.toHexString(offset) + (data
                                ? ": Data cluster is not properly aligned; L2 entry corrupted."
                                : ": Preallocated cluster is not properly aligned; L2 entry corrupted."));
                    }
                    // With an external data file the cluster lives in the other file: nothing to count here.
                    if (!dataFile) {
                        add(offset, clusterSize);
                    }
                    if (active) {
                        if (activeDataCount == activeData.length) {
                            // The new array is charged beside the old one, which is garbage once copied.
                            counts.charge(8L * activeData.length * 2);
                            activeData = Arrays.copyOf(activeData, activeData.length * 2);
                            counts.release(8L * activeData.length / 2);
                        }
                        activeData[activeDataCount++] = entry;
                    }
                }
                case UNALLOCATED -> {
                    if ((bitmap & L2Entry.BITMAP_ALLOC_MASK) != 0) {
                        corruption(() -> "ERROR: Unallocated cluster has non-zero subcluster allocation map");
                    }
                }
                // ZERO_PLAIN cannot occur with subclusters, so there is no bitmap to check.
                case ZERO_PLAIN -> {
                }
            }
        }
    }

    /** A compressed entry: +1 on every host cluster its byte range touches. */
    private void checkCompressed(long entry, long bitmap, int index) throws ImageTooLargeException {
        if (L2Entry.copied(entry)) {
            CompressedDescriptor d = CompressedDescriptor.decode(entry, clusterBits);
            corruption(() -> "ERROR: coffset=0x" + Long.toHexString(d.hostOffset())
                    + ": copied flag must never be set for compressed clusters");
        }
        if (header.hasDataFile()) {
            corruption(() -> "ERROR compressed cluster " + index + " with data file, entry=0x"
                    + Long.toHexString(entry));
            return;
        }
        if (bitmap != 0) {
            corruption(() -> "ERROR compressed cluster " + index
                    + " with non-zero subcluster allocation bitmap, entry=0x" + Long.toHexString(entry));
            return;
        }
        CompressedDescriptor d = CompressedDescriptor.decode(entry, clusterBits);
        add(d.hostOffset(), d.length());
    }

    /**
     * QEMU's qcow2_check_bitmaps_refcounts: the bitmap directory, each bitmap table and each bitmap data cluster.
     * QEMU reads the extension only when the autoclear bitmaps bit is set; so do we.
     */
    private void countBitmaps(Storage file) throws IOException {
        Optional<BitmapDirectory.Location> at = BitmapDirectory.Location.of(header);
        if (at.isEmpty()) {
            return;
        }
        long nbBitmaps = at.get().count();
        long dirSize = at.get().size();
        long dirOffset = at.get().offset();
        if (nbBitmaps == 0) {
            return;
        }
        add(dirOffset, dirSize);
        // The extension's own limit (1024 * 65535 bytes) bounds the directory read.
        // Compared without a sum that could overflow: the offset is a u64 from the file.
        if (dirSize < 0 || dirSize > Limits.MAX_BITMAP_DIRECTORY_BYTES || dirOffset < 0
                || dirOffset > fileLength - dirSize) {
            corruption(() -> "ERROR bitmap directory at 0x" + Long.toHexString(dirOffset) + " (" + dirSize
                    + " bytes) cannot be loaded");
            return;
        }
        byte[] dir = new byte[(int) dirSize];
        file.readFully(ByteBuffer.wrap(dir), dirOffset);
        BitmapDirectory directory = BitmapDirectory.parse(dir, nbBitmaps);
        for (BitmapDirectory.Entry bitmap : directory.entries()) {
            if (bitmap.breaksConstraints(clusterSize)) { // QEMU will not open the image; its table is still counted
                corruption(() -> "ERROR bitmap '" + bitmap.name() + "' doesn't satisfy the constraints");
            }
            long tableOffset = bitmap.tableOffset();
            long tableSize = bitmap.tableEntries();
            add(tableOffset, tableSize * 8);
            if ((tableOffset & (clusterSize - 1)) != 0 || tableOffset < 0
                    || tableOffset > fileLength - tableSize * 8) {
                corruption(() -> "ERROR bitmap table at 0x" + Long.toHexString(tableOffset) + " cannot be loaded");
                continue;
            }
            long[] table = readTable(file, tableOffset, tableSize);
            for (long e : table) {
                long offset = BitmapTableEntry.offset(e);
                if (!BitmapTableEntry.valid(e, clusterSize)) {
                    corruption(() -> "ERROR bitmap table entry 0x" + Long.toHexString(e) + " is invalid");
                    continue;
                }
                if (offset != 0) {
                    add(offset, clusterSize);
                }
            }
        }
        if (directory.error() != null) {
            corruption(() -> directory.error());
        }
    }

    /** QEMU's check_refblocks: counts every refblock; an unusable entry means the structures need a rebuild. */
    private void checkRefblocks() throws ImageTooLargeException {
        for (int index = 0; index < reftable.length; index++) {
            int i = index;
            long e = reftable[i];
            long offset = ReftableEntry.refblockOffset(e);
            long cluster = offset >>> clusterBits;
            if ((e & ReftableEntry.RESERVED_MASK) != 0) {
                corruption(() -> "ERROR refcount table entry " + i + " has reserved bits set");
                refblocksBroken = true;
            } else if ((offset & (clusterSize - 1)) != 0) {
                corruption(() -> "ERROR refcount block " + i
                        + " is not cluster aligned; refcount table entry corrupted");
                refblocksBroken = true;
            } else if (cluster >= clusters) {
                corruption(() -> "ERROR refcount block " + i + " is outside image");
                refblocksBroken = true;
            } else if (offset != 0) {
                add(offset, clusterSize);
                refcountStructure.add(cluster);
                long refcount = counts.get(cluster);
                if (refcount != 1) {
                    corruption(() -> "ERROR refcount block " + i + " refcount=" + refcount);
                    refblocksBroken = true;
                }
            }
        }
    }

    /**
     * QEMU's qcow2_inc_refcounts_imrt: +1 on every cluster that [offset, offset + size) touches. A range that
     * reaches a cluster or more past the end of the file is a corruption and is not counted (the last cluster
     * may be partly allocated, so less is fine); a count at the width's maximum is an overflow.
     */
    private void add(long offset, long size) throws ImageTooLargeException {
        if (size <= 0) {
            return;
        }
        // offset + size - fileLength >= clusterSize, without the sum that a u64 offset from the file overflows.
        if (offset < 0 || size >= fileLength + clusterSize - offset) {
            corruption(() -> "ERROR: counting reference for region exceeding the end of the file by one cluster or"
                    + " more: offset 0x" + Long.toHexString(offset) + " size 0x" + Long.toHexString(size));
            return;
        }
        long first = offset >>> clusterBits;
        long last = (offset + size - 1) >>> clusterBits;
        for (long c = first; c <= last; c++) {
            // The range ends less than a cluster past EOF, so c is at most the slot past the file's clusters.
            clusters = Math.max(clusters, (int) c + 1);
            long overflows = counts.incrementBy(c, weight);
            if (overflows > 0) {
                long at = c << clusterBits;
                corruptions(overflows, () -> "ERROR: overflow cluster offset=0x" + Long.toHexString(at));
            }
        }
    }

    /**
     * Reads {@code entries} big-endian u64 values at {@code offset}; entries past the end of the file are 0. The
     * memory the read takes at its peak is checked against the bound (a bitmap table may claim 2^32 entries).
     */
    private long[] readTable(Storage file, long offset, long entries) throws IOException {
        long inFile = offset < 0 || offset >= fileLength ? 0 : Math.min(entries, (fileLength - offset) / 8);
        if (inFile <= 0) {
            // Nothing of it lies in the file (a negative offset, bit 63 set, is never passed to the file).
            return new long[0];
        }
        if (inFile > (Integer.MAX_VALUE - 8) / 8) {
            throw new ImageTooLargeException("Table of " + inFile + " entries at 0x" + Long.toHexString(offset)
                    + " is too large to read");
        }
        counts.charge(16 * inFile);
        byte[] raw = new byte[(int) inFile * 8];
        file.readFully(ByteBuffer.wrap(raw), offset);
        long[] table = new long[(int) inFile];
        for (int i = 0; i < table.length; i++) {
            table[i] = Bytes.getLong(raw, i * 8);
        }
        // The active L1 table and the reftable are kept, but QEMU's limits bound them (32 and 8 MiB).
        counts.release(16 * inFile);
        return table;
    }

    /** Counts a corruption, as many times as the walk's weight; its message is made only if it will be kept. */
    private void corruption(Supplier<String> message) {
        corruptions(weight, message);
    }

    /** Counts {@code n} corruptions alike; the message is made only if a line of it will be kept. */
    private void corruptions(long n, Supplier<String> message) {
        corruptions += n;
        long left = n;
        if (problems.size() < keptLines) {
            String line = message.get();
            for (; left > 0 && problems.size() < keptLines; left--) {
                problems.add(line);
            }
        }
        problemsNotKept += left;
    }
}
