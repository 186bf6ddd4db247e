package io.github.qcowloom.image;

import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.SnapshotTable;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/** Reads an image's validated cluster 0 and snapshot table from any storage: for open, check and the crash kit. */
public final class ImageMetadata {
    private ImageMetadata() {
    }

    /** Reads and validates cluster 0 (header, extensions, backing file name). */
    public static Header readHeader(Storage storage) throws IOException {
        return Header.parse(readCluster0(storage), storage.size());
    }

    /** As {@link #readHeader}, leaving the snapshot table pointer to the check ({@link Header#parseForCheck}). */
    public static Header readHeaderForCheck(Storage storage) throws IOException {
        return Header.parseForCheck(readCluster0(storage), storage.size());
    }

    /** Reads the snapshot table the header names (validated against QEMU's limits and the file length). */
    public static List<Snapshot> readSnapshots(Storage storage, Header header) throws IOException {
        return header.nbSnapshots() == 0 ? List.of()
                : SnapshotTable.parse(new ReadAheadReader(storage), header.snapshotsOffset(), header.nbSnapshots(),
                        storage.size());
    }

    /** Reads the active L1 table (Header.parse has checked its size against QEMU's limit and the file). */
    public static long[] readActiveL1(Storage storage, Header header) throws IOException {
        return L1Entry.decodeTable(readBytes(storage, header.l1TableOffset(), header.l1Size() * 8), header.l1Size());
    }

    /** The active L1 table ({@code place} null) or the snapshot {@code place}'s, validated as QEMU validates it. */
    public static long[] readL1(Storage storage, Header header, Snapshot place) throws IOException {
        return place == null ? readActiveL1(storage, header) : readSnapshotL1(storage, header, place);
    }

    /**
     * The clusters of every L2 table that the active L1 table or a snapshot's names, sorted, each once; each distinct
     * L1 table (snapshots may share one) is read once. The memory is the distinct tables and one L1 table, whatever
     * a hostile image repeats.
     */
    public static long[] distinctL2Clusters(Storage storage, Header header, List<Snapshot> snapshots)
            throws IOException {
        long[] clusters = new long[0];
        for (Snapshot place : distinctL1Tables(header, snapshots)) {
            long[] l1 = readL1(storage, header, place);
            int n = clusters.length;
            clusters = Arrays.copyOf(clusters, n + l1.length);
            for (int i = 0; i < l1.length; i++) {
                long l2 = L1Entry.checkedL2Offset(l1[i], i, header.clusterSize());
                if (l2 != 0) {
                    clusters[n++] = l2 >>> header.clusterBits();
                }
            }
            Arrays.sort(clusters, 0, n);
            int unique = 0;
            for (int k = 0; k < n; k++) {
                if (unique == 0 || clusters[k] != clusters[unique - 1]) {
                    clusters[unique++] = clusters[k];
                }
            }
            clusters = Arrays.copyOf(clusters, unique);
        }
        return clusters;
    }

    /**
     * The L1 tables of the image, each place once: null for the active one, then the snapshots whose table lies
     * elsewhere (several snapshots may name one table).
     */
    public static List<Snapshot> distinctL1Tables(Header header, List<Snapshot> snapshots) {
        Set<List<Long>> seen = new HashSet<>();
        List<Snapshot> places = new ArrayList<>();
        places.add(null);
        seen.add(List.of(header.l1TableOffset(), (long) header.l1Size()));
        for (Snapshot s : snapshots) {
            if (seen.add(List.of(s.l1TableOffset(), Integer.toUnsignedLong(s.l1Size())))) {
                places.add(s);
            }
        }
        return places;
    }

    /**
     * Reads a snapshot's L1 table after QEMU's qcow2_validate_table ("Snapshot L1 table too large" /
     * "... offset invalid"), which QEMU runs before using one since it does not check snapshot L1 tables at open;
     * the size is checked before anything is allocated for it.
     */
    public static long[] readSnapshotL1(Storage storage, Header header, Snapshot snapshot) throws IOException {
        long entries = Integer.toUnsignedLong(snapshot.l1Size());
        if (entries > Limits.MAX_L1_BYTES / 8) {
            throw new ImageTooLargeException("Snapshot L1 table too large: " + entries + " entries");
        }
        Header.validateTable("Snapshot L1 table", snapshot.l1TableOffset(), entries * 8, header.clusterSize(),
                storage.size());
        return L1Entry.decodeTable(readBytes(storage, snapshot.l1TableOffset(), (int) entries * 8), (int) entries);
    }

    /**
     * Reads {@code count} snapshot table entries at {@code offset} as qemu-img check does: bytes past the end of
     * the file read as zeros, and with {@code repair} (-r all) damage is cut away instead of refused
     * ({@link SnapshotTable#read}). The caller has validated the pointer.
     */
    public static SnapshotTable.Contents readSnapshotsForCheck(Storage storage, long offset, int count,
            boolean repair) throws IOException {
        return SnapshotTable.read(new ReadAheadReader(storage), offset, count, Long.MAX_VALUE, repair);
    }

    private static byte[] readCluster0(Storage storage) throws IOException {
        long length = storage.size();
        byte[] first = readBytes(storage, 0, (int) Math.min(length, Limits.V3_HEADER_LENGTH));
        int clusterBits = Header.peekClusterBits(first);
        return readBytes(storage, 0, (int) Math.min(length, 1L << clusterBits));
    }

    /** Reads {@code length} bytes at {@code offset}; bytes past the end of the file read as zeros. */
    static byte[] readBytes(Storage storage, long offset, int length) throws IOException {
        byte[] b = new byte[length];
        storage.readFully(ByteBuffer.wrap(b), offset);
        return b;
    }
}
