package io.github.qcowloom.format;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The persistent-bitmap directory (qcow2.rst, "Bitmap directory"): entries of 24 fixed bytes, then extra data,
 * then the name, each padded to 8 bytes. Parsed from the directory's bytes as they are in the file, up to the
 * count the header extension gives or the first entry that does not fit, which ends the walk with {@link #error}.
 * An entry whose fixed part fits but whose extra data or name runs past the directory is still returned (with an
 * empty name): check counts every table it can find, so that {@code check -r leaks} never frees a bitmap's
 * clusters. (QEMU's check counts no table at all once the directory fails to load, and fails.)
 *
 * @param entries the entries whose fixed part fits, in directory order
 * @param error why the walk stopped early, in qemu-img check's words; null if every entry fit
 * @param end where the walk ended: the directory's bytes the entries took, with their padding
 */
public record BitmapDirectory(List<Entry> entries, String error, long end) {
    /** The fixed part of an entry. */
    public static final int ENTRY_FIXED_BYTES = 24;

    /**
     * One bitmap.
     *
     * @param tableOffset where its bitmap table is, as stored (unchecked: the caller checks it against the file)
     * @param tableEntries the table's length in 8-byte entries (a u32)
     * @param flags in_use, auto, extra_data_compatible and reserved bits
     * @param type 1: dirty tracking bitmap
     * @param granularityBits log2 of the bytes one bit covers
     * @param nameSize the name's length in bytes, as stored
     * @param name the bitmap's name (UTF-8 as stored, malformed bytes replaced; empty if it runs past the directory)
     * @param extraSize the bytes of extra data between the fixed part and the name
     * @param position where the entry starts in the directory
     */
    public record Entry(long tableOffset, long tableEntries, int flags, int type, int granularityBits, int nameSize,
            String name, long extraSize, int position) {
        // QEMU's bitmap directory entry constraints (block/qcow2-bitmap.c)
        private static final int RESERVED_FLAGS = 0xfffffffc; // all but in_use and auto
        private static final int DIRTY_TRACKING = 1;

        /** The flag of a bitmap not stored since a writer that keeps it opened the image. */
        public static final int IN_USE = 1;
        /** The flag of an enabled bitmap. */
        public static final int AUTO = 2;

        /** An entry as QEMU writes one: a dirty tracking bitmap without extra data; its position is unknown (-1). */
        public static Entry of(String name, long tableOffset, long tableEntries, int flags, int granularityBits) {
            return new Entry(tableOffset, tableEntries, flags, DIRTY_TRACKING, granularityBits,
                    name.getBytes(StandardCharsets.UTF_8).length, name, 0, -1);
        }

        /** Set on disk while a writer that keeps the bitmap has it open: the bitmap on disk is stale then. */
        public boolean inUse() {
            return (flags & IN_USE) != 0;
        }

        /** The bitmap tracks writes as soon as the image is opened (an enabled bitmap). */
        public boolean auto() {
            return (flags & AUTO) != 0;
        }

        /** The entry's flags with in use set. */
        public int inUseFlags() {
            return flags | IN_USE;
        }

        /** Where the entry's flags are in the directory. */
        public int flagsPosition() {
            return position + 12;
        }

        /**
         * True if the entry breaks QEMU's check_dir_entry constraints that need no disk size (an empty, misplaced
         * or oversized table, a granularity out of 9..31, reserved flags, a name over 1023 bytes, a type other
         * than dirty tracking): QEMU then refuses to open the image ("Bitmap '...' doesn't satisfy the
         * constraints").
         */
        public boolean breaksConstraints(long clusterSize) {
            return tableEntries == 0 || tableOffset == 0 || tableOffset % clusterSize != 0
                    || tableEntries > Limits.MAX_BITMAP_TABLE_ENTRIES
                    || granularityBits < Limits.MIN_BITMAP_GRANULARITY_BITS
                    || granularityBits > Limits.MAX_BITMAP_GRANULARITY_BITS || (flags & RESERVED_FLAGS) != 0
                    || nameSize > Limits.MAX_BITMAP_NAME_BYTES || type != DIRTY_TRACKING;
        }
    }

    public BitmapDirectory {
        entries = List.copyOf(entries);
    }

    /**
     * Where the header's bitmaps extension puts the directory, as QEMU reads it: only with the autoclear bitmaps
     * bit set (without it QEMU drops the extension, the bitmaps having gone stale under a writer that does not keep
     * them). Header.parse has checked the extension: a count of 1 to 65535, an aligned directory of at most
     * {@link Limits#MAX_BITMAP_DIRECTORY_BYTES}.
     *
     * @param count the number of bitmaps (a u32)
     * @param size the directory's length in bytes
     * @param offset the directory's offset in the file
     */
    public record Location(long count, long size, long offset) {
        /** The directory's location, or empty if QEMU would load no bitmaps. */
        public static Optional<Location> of(Header header) {
            Optional<HeaderExtension> ext = header.extension(HeaderExtension.BITMAPS);
            if (ext.isEmpty() || (header.autoclearFeatures() & Features.AUTOCLEAR_BITMAPS) == 0) {
                return Optional.empty();
            }
            byte[] d = ext.get().data();
            return Optional.of(new Location(Bytes.getUInt(d, 0), Bytes.getLong(d, 8), Bytes.getLong(d, 16)));
        }

        /**
         * {@code h} pointing to the directory at {@code at}, with the autoclear bitmaps bit set; or, for none, without
         * the extension and the bit (as QEMU leaves an image whose last bitmap is removed).
         */
        public static Header applyTo(Header h, Optional<Location> at) {
            List<HeaderExtension> extensions = new ArrayList<>(h.extensions());
            extensions.removeIf(e -> e.type() == HeaderExtension.BITMAPS);
            long autoclear = h.autoclearFeatures() & ~Features.AUTOCLEAR_BITMAPS;
            if (at.isPresent()) {
                byte[] d = new byte[24];
                Bytes.putInt(d, 0, (int) at.get().count());
                Bytes.putLong(d, 8, at.get().size());
                Bytes.putLong(d, 16, at.get().offset());
                extensions.add(new HeaderExtension(HeaderExtension.BITMAPS, d));
                autoclear |= Features.AUTOCLEAR_BITMAPS;
            }
            return h.withBackingFile(h.backingFile(), extensions)
                    .withFeatures(h.incompatibleFeatures(), h.compatibleFeatures(), autoclear);
        }
    }

    /**
     * Why QEMU would not load this directory, {@code bytes} long, of an image of {@code clusterSize} clusters and
     * {@code diskSize} bytes, in its words and in the order its walk meets them (qcow2-bitmap.c's bitmap_list_load
     * and check_dir_entry); null if it would: every entry whole and within the constraints, without extra data, no
     * bitmap over QEMU's 512 MiB in memory, the table of a bitmap not in use large enough for the disk, and as many
     * entries as the header says, ending where the directory does. QEMU refuses to open an image whose directory it
     * does not load.
     */
    public String qemuRefusal(long bytes, long clusterSize, long diskSize) {
        // The walk stopped at an entry whose fixed part fit but whose name did not: the last one listed.
        boolean lastCut = error != null && !entries.isEmpty() && entries.getLast().position() == end;
        for (int i = 0; i < entries.size(); i++) {
            Entry e = entries.get(i);
            if (lastCut && i == entries.size() - 1) {
                return "Broken bitmap directory";
            }
            if (e.extraSize() != 0) {
                return "Bitmap extra data is not supported";
            }
            // At most 2^32 entries times 2^21 bytes: no overflow, even before the constraints are known to hold.
            long physBytes = e.tableEntries() * clusterSize;
            // QEMU's len > (physBytes * 8) << granularity, without the shift's overflow (granularity < 32 here).
            if (e.breaksConstraints(clusterSize) || physBytes > Limits.MAX_BITMAP_BYTES
                    || !e.inUse() && diskSize > 0 && (diskSize - 1) >>> e.granularityBits() >= physBytes * 8) {
                return "Bitmap '" + e.name() + "' doesn't satisfy the constraints";
            }
        }
        if (error != null) { // the next entry's fixed part did not fit
            return end == bytes ? "Less bitmaps found than specified in header extension" : "Broken bitmap directory";
        }
        if (end != bytes) { // bytes left after as many entries as the header said
            return bytes - end >= ENTRY_FIXED_BYTES ? "More bitmaps found than specified in header extension"
                    : "Broken bitmap directory";
        }
        return null;
    }

    /** QEMU's calc_dir_entry_size: the bytes an entry with a name of {@code nameBytes} takes, padding included. */
    public static long entryBytes(long nameBytes) {
        return Bytes.alignUp(ENTRY_FIXED_BYTES + nameBytes, 8);
    }

    /** The directory's bytes for {@code entries}, in order, each without extra data, as QEMU writes them. */
    public static byte[] encode(List<Entry> entries) {
        long size = 0;
        for (Entry e : entries) {
            size += entryBytes(e.name().getBytes(StandardCharsets.UTF_8).length);
        }
        byte[] dir = new byte[Math.toIntExact(size)];
        int pos = 0;
        for (Entry e : entries) {
            byte[] name = e.name().getBytes(StandardCharsets.UTF_8);
            Bytes.putLong(dir, pos, e.tableOffset());
            Bytes.putInt(dir, pos + 8, (int) e.tableEntries());
            Bytes.putInt(dir, pos + 12, e.flags());
            dir[pos + 16] = (byte) e.type();
            dir[pos + 17] = (byte) e.granularityBits();
            Bytes.putShort(dir, pos + 18, name.length);
            // extra_data_size (pos + 20) stays 0
            System.arraycopy(name, 0, dir, pos + ENTRY_FIXED_BYTES, name.length);
            pos += (int) entryBytes(name.length);
        }
        return dir;
    }

    /** Walks {@code count} entries (a u32 from the header extension) in {@code dir}. */
    public static BitmapDirectory parse(byte[] dir, long count) {
        List<Entry> entries = new ArrayList<>();
        // A long: an entry's extra data size is a u32, so the next position can pass any int.
        long pos = 0;
        for (long i = 0; i < count; i++) {
            if (pos > dir.length - ENTRY_FIXED_BYTES) {
                return new BitmapDirectory(entries, "ERROR bitmap directory entry " + i
                        + " extends past the directory", pos);
            }
            int at = (int) pos;
            int nameSize = Bytes.getUShort(dir, at + 18);
            long extraSize = Bytes.getUInt(dir, at + 20);
            long nameAt = pos + ENTRY_FIXED_BYTES + extraSize;
            boolean fits = nameAt <= dir.length - nameSize;
            String name = fits ? new String(dir, (int) nameAt, nameSize, StandardCharsets.UTF_8) : "";
            entries.add(new Entry(Bytes.getLong(dir, at), Bytes.getUInt(dir, at + 8), Bytes.getInt(dir, at + 12),
                    dir[at + 16] & 0xff, dir[at + 17] & 0xff, nameSize, name, extraSize, at));
            if (!fits) {
                return new BitmapDirectory(entries, "ERROR bitmap directory entry " + i
                        + " extends past the directory", pos);
            }
            pos = Bytes.alignUp(nameAt + nameSize, 8);
        }
        return new BitmapDirectory(entries, null, pos);
    }
}
