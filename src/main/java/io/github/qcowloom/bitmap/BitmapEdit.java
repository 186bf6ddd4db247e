package io.github.qcowloom.bitmap;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.image.BitmapBits;
import io.github.qcowloom.image.BitmapTables;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.TableEditor;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The bitmaps of one image while an edit changes them, as QEMU holds them in memory between qemu-img bitmap's open
 * and its close: each step is checked as QEMU checks it and refused in its words, and {@link #store} then writes
 * what the steps made in QEMU's crash-safe order ({@link BitmapTables}). A table a step writes goes into new
 * clusters at once; the directory on disk points to it only once the store publishes it.
 *
 * <p>Runs inside {@link Qcow2Image#editTables}, with the image held exclusively.
 */
final class BitmapEdit {
    /** Where a bitmap's bits are during the edit. */
    private sealed interface Table {
        /** The table the directory on disk gives it. */
        record Published(BitmapDirectory.Entry entry) implements Table {
        }

        /** None yet: every bit clear (a new or cleared bitmap); its table is written at the store. */
        record Zeroes() implements Table {
        }

        /** A table written during the edit, not yet pointed to. */
        record Written(BitmapTables.Table table) implements Table {
        }
    }

    /** A bitmap of the edit: {@code flags} are the directory's (in use, auto). */
    private record Member(String name, int granularityBits, int flags, Table table) {
        boolean inUse() {
            return (flags & BitmapDirectory.Entry.IN_USE) != 0;
        }

        Member with(int newFlags, Table newTable) {
            return new Member(name, granularityBits, newFlags, newTable);
        }
    }

    private final Qcow2Image image;
    private final TableEditor tables;
    private final String imageName;
    private final List<Member> members = new ArrayList<>();
    /** Tables of the directory on disk that the new one no longer points to: freed once it is published. */
    private final List<BitmapDirectory.Entry> retired = new ArrayList<>();
    private boolean changed;

    /**
     * The bitmaps as the directory gives them. Each one not in use has its table read and checked, as QEMU loads
     * them at its open: one it could not load refuses the edit before anything changes, and so does a header with
     * no room for the bitmaps' extension.
     *
     * @throws io.github.qcowloom.api.CorruptImageException in QEMU's words
     */
    BitmapEdit(Qcow2Image image, TableEditor tables, String imageName) throws IOException {
        this.image = image;
        this.tables = tables;
        this.imageName = imageName;
        tables.requireRoomForBitmaps();
        for (BitmapDirectory.Entry e : Bitmaps.loaded(image)) {
            members.add(new Member(e.name(), e.granularityBits(), e.flags(), new Table.Published(e)));
        }
    }

    /**
     * Applies {@code action}; {@code source} is the image a merge reads its source bitmap from (one without bitmaps
     * if not qcow2), null for this one.
     *
     * @throws BitmapActionException where QEMU refuses the step; nothing is changed then
     */
    void apply(BitmapAction action, BlockDevice source) throws IOException {
        switch (action) {
            case BitmapAction.Add add -> add(add);
            case BitmapAction.Remove r -> {
                Member m = find(action, r.bitmap());
                members.remove(m);
                retire(m.table());
            }
            case BitmapAction.Clear c -> {
                Member m = usable(action, c.bitmap());
                replace(m, m.with(m.flags(), new Table.Zeroes()));
            }
            case BitmapAction.Enable e -> {
                Member m = usable(action, e.bitmap());
                replace(m, m.with(m.flags() | BitmapDirectory.Entry.AUTO, m.table()));
            }
            case BitmapAction.Disable d -> {
                Member m = usable(action, d.bitmap());
                replace(m, m.with(m.flags() & ~BitmapDirectory.Entry.AUTO, m.table()));
            }
            case BitmapAction.Merge merge -> merge(merge, source);
        }
    }

    private void add(BitmapAction.Add add) throws IOException {
        String name = add.bitmap();
        if (name.isEmpty()) {
            throw new BitmapActionException(add, "Bitmap name cannot be empty");
        }
        long granularity = add.granularity();
        if (granularity != 0 && (granularity < 512 || Long.bitCount(granularity) != 1)) {
            throw new BitmapActionException(add, "Granularity must be power of 2 and at least 512");
        }
        if (granularity == 0) { // QEMU's bdrv_get_default_bitmap_granularity
            granularity = Math.min(65536, Math.max(4096, tables.header().clusterSize()));
        }
        if (lookup(name).isPresent()) {
            throw new BitmapActionException(add, "Bitmap already exists: " + name);
        }
        int granularityBits = Long.numberOfTrailingZeros(granularity);
        String refusal = cannotStore(name, granularityBits);
        if (refusal != null) {
            throw new BitmapActionException(add, "Can't make bitmap '" + name + "' persistent in '" + imageName
                    + "': " + refusal);
        }
        members.add(new Member(name, granularityBits, BitmapDirectory.Entry.AUTO, new Table.Zeroes()));
        changed = true;
    }

    /** QEMU's qcow2_co_can_store_new_dirty_bitmap and check_constraints_on_bitmap, in their order; null if it can. */
    private String cannotStore(String name, int granularityBits) {
        if (tables.header().version() < 3) {
            return "Cannot store dirty bitmaps in qcow2 v2 files";
        }
        if (granularityBits > Limits.MAX_BITMAP_GRANULARITY_BITS) {
            return "Granularity exceeds maximum (" + (1L << Limits.MAX_BITMAP_GRANULARITY_BITS) + " bytes)";
        }
        long diskSize = tables.header().diskSize();
        if (BitmapBits.tooLarge(diskSize, granularityBits, tables.header().clusterSize())) {
            return "Too much space will be occupied by the bitmap. Use larger granularity";
        }
        int nameBytes = name.getBytes(StandardCharsets.UTF_8).length;
        if (nameBytes > Limits.MAX_BITMAP_NAME_BYTES) {
            return "Name length exceeds maximum (" + Limits.MAX_BITMAP_NAME_BYTES + " characters)";
        }
        if (diskSize == 0) {
            // QEMU adds it, then fails to store it at close ("Lost persistent bitmaps"): a table has 1 entry or more.
            return "A bitmap of an empty disk cannot be stored";
        }
        if (members.size() >= Limits.MAX_BITMAPS) {
            return "Maximum number of persistent bitmaps is already reached";
        }
        long directoryBytes = BitmapDirectory.entryBytes(nameBytes);
        for (Member m : members) {
            directoryBytes += BitmapDirectory.entryBytes(m.name().getBytes(StandardCharsets.UTF_8).length);
        }
        if (directoryBytes > Limits.MAX_BITMAP_DIRECTORY_BYTES) {
            return "Not enough space in the bitmap directory";
        }
        return null;
    }

    private void merge(BitmapAction.Merge merge, BlockDevice source) throws IOException {
        Member target = usable(merge, merge.bitmap());
        BitmapBits from;
        if (source == null) {
            from = bits(usable(merge, merge.source()));
        } else {
            List<BitmapDirectory.Entry> theirs = source instanceof Qcow2Image q ? q.persistentBitmaps() : List.of();
            Optional<BitmapDirectory.Entry> e = theirs.stream().filter(b -> b.name().equals(merge.source()))
                    .findFirst();
            if (e.isEmpty()) {
                throw notFound(merge, merge.source());
            }
            if (e.get().inUse()) {
                throw inconsistent(merge, merge.source());
            }
            from = ((Qcow2Image) source).bitmapBits(e.get());
        }
        BitmapBits to = bits(target);
        if (from.diskSize() != to.diskSize()) {
            throw new BitmapActionException(merge, "Bitmaps are of different sizes (destination size is "
                    + to.diskSize() + ", source size is " + from.diskSize() + ") and can't be merged");
        }
        long[] entries = MergedTable.write(tables, to, from);
        replace(target, target.with(target.flags(), new Table.Written(BitmapTables.writeTable(tables, entries))));
    }

    private BitmapBits bits(Member m) throws IOException {
        return switch (m.table()) {
            case Table.Published p -> image.bitmapBits(p.entry());
            case Table.Written w -> image.bitmapBits(m.granularityBits(), w.table().entries());
            case Table.Zeroes z -> image.bitmapBits(m.granularityBits(), new long[0]);
        };
    }

    private void replace(Member old, Member now) throws IOException {
        members.set(members.indexOf(old), now);
        if (old.table() != now.table()) {
            retire(old.table());
        }
        changed = true;
    }

    /** Drops a table no bitmap will use: one written in this edit is freed now, a published one after the store. */
    private void retire(Table table) throws IOException {
        changed = true;
        switch (table) {
            case Table.Published p -> retired.add(p.entry());
            case Table.Written w -> BitmapTables.free(tables, w.table());
            case Table.Zeroes z -> {
            }
        }
    }

    private Optional<Member> lookup(String name) {
        return members.stream().filter(m -> m.name().equals(name)).findFirst();
    }

    private Member find(BitmapAction action, String name) throws BitmapActionException {
        return lookup(name).orElseThrow(() -> notFound(action, name));
    }

    /** The bitmap, if QEMU would let a step use it (BDRV_BITMAP_DEFAULT): found and not in use. */
    private Member usable(BitmapAction action, String name) throws BitmapActionException {
        Member m = find(action, name);
        if (m.inUse()) {
            throw inconsistent(action, name);
        }
        return m;
    }

    private static BitmapActionException notFound(BitmapAction action, String name) {
        return new BitmapActionException(action, "Dirty bitmap '" + name + "' not found");
    }

    private static BitmapActionException inconsistent(BitmapAction action, String name) {
        return new BitmapActionException(action, "Bitmap '" + name + "' is inconsistent and cannot be used\n"
                + "Try block-dirty-bitmap-remove to delete this bitmap from disk");
    }

    /** Writes what the steps made, if they changed anything ({@link BitmapTables}). */
    void store() throws IOException {
        if (!changed) {
            return;
        }
        int clusterBits = tables.header().clusterBits();
        List<BitmapDirectory.Entry> entries = new ArrayList<>();
        for (Member m : members) {
            Table table = m.table();
            if (table instanceof Table.Zeroes) {
                long count = BitmapBits.tableEntries(tables.header().diskSize(), m.granularityBits(), clusterBits);
                table = new Table.Written(BitmapTables.writeTable(tables, new long[Math.toIntExact(count)]));
            }
            entries.add(switch (table) {
                case Table.Published p -> BitmapDirectory.Entry.of(m.name(), p.entry().tableOffset(),
                        p.entry().tableEntries(), m.flags(), m.granularityBits());
                case Table.Written w -> BitmapDirectory.Entry.of(m.name(), w.table().offset(),
                        w.table().entries().length, m.flags(), m.granularityBits());
                case Table.Zeroes z -> throw new AssertionError("written above");
            });
        }
        List<BitmapTables.Table> old = new ArrayList<>();
        for (BitmapDirectory.Entry e : retired) {
            old.add(new BitmapTables.Table(e.tableOffset(), image.bitmapTable(e)));
        }
        BitmapTables.publish(tables, entries, old);
    }
}
