package io.github.qcowloom.image;

import io.github.qcowloom.alloc.FreedRuns;
import io.github.qcowloom.alloc.TreeRefcounts;
import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.RefcountOverflowException;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderField;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The steps that snapshot operations (package {@code snapshot}, QEMU's qcow2-snapshot.c) and bitmap edits (package
 * {@code bitmap}, QEMU's qcow2-bitmap.c) take on an image's tables, handed out by {@link Qcow2Image#editTables} while
 * the image is held exclusively and valid only until that call returns. Each step says what it makes durable; the
 * caller strings them together in a crash-safe order.
 */
public final class TableEditor {
    /** An edit of the tables; runs while the image is held exclusively. */
    @FunctionalInterface
    public interface Edit<T> {
        T apply(TableEditor tables) throws IOException;
    }

    private final Qcow2Image image;
    private final MetadataWriter metadata;
    private final ClusterMapper mapper;
    private final TreeRefcounts trees;
    private final Storage file;
    private boolean open = true;
    /** Set once a step changed anything, in the caches or on disk; an edit that fails before changes nothing. */
    private boolean changed;

    TableEditor(Qcow2Image image, MetadataWriter metadata, ClusterMapper mapper, TreeRefcounts trees, Storage file) {
        this.image = image;
        this.metadata = metadata;
        this.mapper = mapper;
        this.trees = trees;
        this.file = file;
    }

    /** Ends the edit: later calls fail. */
    void close() {
        open = false;
    }

    private void requireOpen() {
        if (!open) {
            throw new IllegalStateException("the table edit has ended");
        }
    }

    /** Notes that the step about to run changes the tables (in the caches or on disk). */
    private void changing() throws IOException {
        requireOpen();
        if (!changed) {
            // An edit changes refcounts and the COPIED flags that follow them in separate synced writes, so a crash
            // part way leaves them disagreeing (and leaked clusters). The dirty bit, durable before the edit's first
            // change can reach the disk, makes the next read-write open repair both; the edit's last flush clears it.
            metadata.markDirty();
        }
        changed = true;
    }

    /** True if a step changed anything; a failed edit that did not can be retried, one that did cannot. */
    boolean changedAnything() {
        return changed;
    }

    /** The header as it is on disk now. */
    public Header header() {
        requireOpen();
        return image.header();
    }

    /** The snapshot table as it is on disk now. */
    public List<Snapshot> snapshots() {
        requireOpen();
        return image.snapshots();
    }

    /** A copy of the active L1 table. */
    public long[] activeL1() {
        requireOpen();
        long[] l1 = new long[mapper.l1().length()];
        for (int i = 0; i < l1.length; i++) {
            l1[i] = mapper.l1().get(i);
        }
        return l1;
    }

    /**
     * Refuses an edit that changes what the guest reads (a snapshot apply: another tree, another size) under a
     * metadata-only open ({@link io.github.qcowloom.api.OpenOptions#guestWrites}); such an edit asks first, before
     * it changes anything.
     */
    public void requireGuestWrites() throws IOException {
        requireOpen();
        image.checkGuestWritable();
    }

    /** Refuses a snapshot apply under a disabled persistent bitmap, before anything changes (QEMU refuses first). */
    public void requireNoDisabledBitmaps() throws IOException {
        requireOpen();
        image.refuseApplyUnderDisabledBitmaps();
    }

    /** A snapshot's L1 table, validated as QEMU validates it before goto and delete ({@link Qcow2Image#readL1}). */
    public long[] readL1(Snapshot snapshot) throws IOException {
        requireOpen();
        return image.readL1(snapshot);
    }

    /**
     * Adds {@code delta} (+1 or −1) to the refcount of every cluster the tree of {@code l1} reaches, in the refcount
     * cache (see {@link TreeRefcounts#add}: an overflowing increase changes nothing). After a decrease the L2 cache
     * forgets every slice, so that no slice of a table freed here can be served or written back later, and the
     * clusters freed are discarded in the host file (QEMU's pass-discard-snapshot, on by default); an edit holds the
     * metadata lock, which every allocation takes, so none of them is handed out before.
     */
    public void addReferences(long[] l1, int delta) throws IOException {
        requireOpen();
        FreedRuns freed = new FreedRuns();
        try {
            trees.add(l1, delta, freed);
        } catch (RefcountOverflowException e) {
            throw e; // the increases were taken back: nothing changed
        } catch (IOException | RuntimeException e) {
            changed = true;
            throw e;
        }
        changing();
        if (delta < 0) {
            // Nothing of the freed tables is dirty in the cache unless a step before left it so; flush it then.
            if (mapper.l2Cache().hasDirty()) {
                metadata.flushEverything();
            }
            mapper.l2Cache().clear();
            freed.discardIn(file, mapper.geometry().clusterBits());
        }
    }

    /**
     * Throws {@link RefcountOverflowException}, having changed nothing, if some cluster of the
     * tree of {@code l1} cannot count one more reference: the increase is tried in the refcount cache and taken back
     * (its slices stay dirty with their old values).
     */
    public void requireRoomForOneMoreReference(long[] l1) throws IOException {
        requireOpen();
        try {
            trees.add(l1, 1, null); // an overflow takes its increases back and throws
            trees.add(l1, -1, null); // from 2 or more: frees nothing
        } catch (RefcountOverflowException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            changed = true; // part of the tree may be left raised in the cache: the image must be reopened
            throw e;
        }
    }

    /**
     * QEMU's addend-0 pass over the active tree: COPIED exactly where the refcount is 1. The refcounts and the
     * changed L2 slices are flushed (refcounts first) before the L1 table, if it changed, is written and synced.
     */
    public void markActiveCopied() throws IOException {
        changing();
        long[] l1 = activeL1();
        long[] marked = trees.markCopied(l1);
        // The refcounts the flags follow from, then the flags in the L2 tables, then the L1 entries.
        metadata.flushEverything();
        if (!Arrays.equals(l1, marked)) {
            metadata.writeActiveL1(marked);
        }
    }

    /** Allocates clusters for {@code bytes} of a new table (refcounts raised in the cache); 0 for no bytes. */
    public long allocate(long bytes) throws IOException {
        changing();
        return metadata.allocateMetadata(bytes);
    }

    /**
     * Frees the clusters of {@code [offset, offset + bytes)} now, and discards them in the host file; only once the
     * last reference to them is durably gone.
     */
    public void free(long offset, long bytes) throws IOException {
        changing();
        metadata.freeNow(offset, bytes);
    }

    /** Writes a new, not yet referenced table into clusters just allocated for it (overlap-checked, no sync). */
    public void writeNewTable(long offset, byte[] table, String what) throws IOException {
        changing();
        metadata.writeNewTable(offset, table, what);
    }

    /**
     * Refuses, having changed nothing, bitmaps whose header extension would not fit in the first cluster beside
     * what the header holds already (a long backing file name in 512-byte clusters).
     */
    public void requireRoomForBitmaps() throws IOException {
        requireOpen();
        Header h = BitmapDirectory.Location.applyTo(image.header(),
                Optional.of(new BitmapDirectory.Location(1, 8, image.header().clusterSize())));
        try {
            HeaderRewrite.cluster0(h);
        } catch (CorruptImageException e) {
            throw new ImageException("Cannot store bitmaps: their header extension does not fit in the first"
                    + " cluster (" + e.getMessage() + ")");
        }
    }

    /**
     * Points the header at a new bitmap directory, or at none, in one synced rewrite of the header (QEMU's
     * update_ext_header_and_dir); the directory, its tables and their refcounts must be durable already.
     */
    public void publishBitmaps(Optional<BitmapDirectory.Location> at) throws IOException {
        changing();
        metadata.rewriteHeader(h -> BitmapDirectory.Location.applyTo(h, at));
        image.replaceHeader(BitmapDirectory.Location.applyTo(image.header(), at));
        metadata.bitmapDirectory(at.map(BitmapDirectory.Location::offset).orElse(0L),
                at.map(BitmapDirectory.Location::size).orElse(0L));
    }

    /** Writes every cached refcount and L2 change (refcounts, sync, L2 slices, sync). */
    public void flush() throws IOException {
        changing();
        metadata.flushEverything();
    }

    /** Grows the active L1 table to exactly {@code entries} entries if it is smaller (QEMU's grow, exact). */
    public void growL1(int entries) throws IOException {
        changing();
        if (entries > mapper.l1().length()) {
            int size = metadata.growL1(entries, true);
            image.replaceHeader(image.header().withL1(size, metadata.l1Offset()));
        }
    }

    /**
     * Writes {@code entries}, padded with empty entries to the active L1 table's size, over the active L1 table
     * and syncs. Every COPIED flag is cleared: until {@link #markActiveCopied} sets them from the refcounts, writes
     * copy, which is always safe, even after a crash here.
     */
    public void replaceActiveL1(long[] entries) throws IOException {
        requireGuestWrites();
        changing();
        long[] table = new long[mapper.l1().length()];
        if (entries.length > table.length) {
            throw new IllegalArgumentException(entries.length + " entries for an L1 table of " + table.length);
        }
        for (int i = 0; i < entries.length; i++) {
            table[i] = entries[i] & ~L1Entry.COPIED;
        }
        metadata.writeActiveL1(table);
        image.guestDataReplaced();
    }

    /** Writes the virtual size into the header and syncs. */
    public void writeSize(long size) throws IOException {
        requireGuestWrites();
        changing();
        metadata.writeHeaderField(HeaderField.SIZE, size);
        image.replaceHeader(image.header().withSize(size));
        image.guestDataReplaced();
    }

    /**
     * Points the header at a new snapshot table, nb_snapshots and snapshots_offset in one synced 12-byte write
     * (QEMU's qcow2_write_snapshots); the table and its refcounts must be durable already.
     */
    public void publishSnapshots(List<Snapshot> snapshots, long tableOffset) throws IOException {
        changing();
        metadata.writeHeaderField(HeaderField.NB_SNAPSHOTS, snapshots.size(), tableOffset);
        image.replaceSnapshots(snapshots, tableOffset);
    }
}
