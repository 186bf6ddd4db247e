package io.github.qcowloom.snapshot;

import io.github.qcowloom.format.Bytes;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * One internal snapshot as stored in the snapshot table. {@code extraData} is kept verbatim (QEMU writes 24
 * bytes: vm_state_size_large, disk_size, icount); the accessors decode the known fields. {@code l1Size} is the
 * stored u32 (read it with {@link Integer#toUnsignedLong}); it is not validated when the table is read, so a
 * user of the snapshot's L1 table validates it first, as QEMU's qcow2_validate_table does on goto and delete.
 *
 * <p>The id and name are kept as the bytes the table holds, as QEMU keeps them: a table written back (every
 * snapshot operation and {@code check -r all} write all entries) must not change another snapshot's name beyond
 * QEMU's own cut at the first NUL ({@link #completed}), and a name need not be UTF-8. {@link #id()} and
 * {@link #name()} decode them as UTF-8 for display and lookup.
 */
public record Snapshot(
        long l1TableOffset,
        int l1Size,
        byte[] idBytes,
        byte[] nameBytes,
        long dateSec,
        long dateNsec,
        long vmClockNsec,
        long vmStateSize32,
        byte[] extraData) {

    /** Shared by every empty field (see {@link #copy}). */
    private static final byte[] NONE = new byte[0];

    public Snapshot {
        idBytes = copy(idBytes);
        nameBytes = copy(nameBytes);
        extraData = copy(extraData);
    }

    /**
     * A defensive copy that allocates nothing for an empty array: qemu-img check -r all reads, completes and
     * rereads up to 65536 entries of a table, and a hostile one is mostly empty entries.
     */
    private static byte[] copy(byte[] b) {
        return b.length == 0 ? NONE : b.clone();
    }

    /** A snapshot whose id and name are text, stored as UTF-8. */
    public Snapshot(long l1TableOffset, int l1Size, String id, String name, long dateSec, long dateNsec,
            long vmClockNsec, long vmStateSize32, byte[] extraData) {
        this(l1TableOffset, l1Size, id.getBytes(StandardCharsets.UTF_8), name.getBytes(StandardCharsets.UTF_8),
                dateSec, dateNsec, vmClockNsec, vmStateSize32, extraData);
    }

    /**
     * The id as text, as QEMU sees it: up to its first NUL (QEMU reads it into a C string), bytes that are not
     * UTF-8 read as U+FFFD.
     */
    public String id() {
        return new String(cString(idBytes), StandardCharsets.UTF_8);
    }

    /** The name as text, as QEMU lists and finds it: up to its first NUL, bytes that are not UTF-8 as U+FFFD. */
    public String name() {
        return new String(cString(nameBytes), StandardCharsets.UTF_8);
    }

    @Override
    public byte[] idBytes() {
        return copy(idBytes);
    }

    @Override
    public byte[] nameBytes() {
        return copy(nameBytes);
    }

    @Override
    public byte[] extraData() {
        return copy(extraData);
    }

    /** Bytes of the id, without copying them. */
    public int idLength() {
        return idBytes.length;
    }

    /** Bytes of the name, without copying them. */
    public int nameLength() {
        return nameBytes.length;
    }

    /** vm-state size: the 64-bit field of the extra data when present, else the 32-bit one. */
    public long vmStateSize() {
        return extraData.length >= 8 ? Bytes.getLong(extraData, 0) : vmStateSize32;
    }

    /**
     * Virtual disk size at snapshot time (unsigned, as stored), or -1 when the entry does not record it (v2
     * images); {@link #diskSizeOr} tells the two apart.
     */
    public long diskSize() {
        return diskSizeOr(-1);
    }

    /**
     * The recorded disk size, whatever it holds (a size of 2^63 or more is negative here), or {@code unrecorded}
     * when the extra data does not hold one: what QEMU's read of the table makes of the entry.
     */
    public long diskSizeOr(long unrecorded) {
        return extraData.length >= 16 ? Bytes.getLong(extraData, 8) : unrecorded;
    }

    /** Bytes of extra data, without copying them. */
    public int extraDataLength() {
        return extraData.length;
    }

    /** Instruction count at snapshot time, or -1 when not recorded (QEMU stores -1 when icount is off). */
    public long icount() {
        return extraData.length >= 24 ? Bytes.getLong(extraData, 16) : -1;
    }

    /** Bytes of the extra data QEMU knows: vm_state_size_large, disk_size, icount. */
    public static final int KNOWN_EXTRA_DATA = 24;

    /**
     * This entry as QEMU's qcow2_write_snapshots writes an entry it read back (every snapshot operation and
     * {@code check -r all} write the whole table): extra data of at least 24 bytes holding every known field (a
     * disk size not recorded becomes {@code diskSize}, the image's in whole sectors (Header#diskSize); an
     * icount not recorded -1), followed by any unknown extra data verbatim; the 32-bit vm-state size is 0 when the
     * 64-bit one does not fit; id and name end at their first NUL, since QEMU keeps them as C strings.
     */
    public Snapshot completed(long diskSize) {
        long vmState = vmStateSize();
        byte[] extra = Arrays.copyOf(extraData, Math.max(KNOWN_EXTRA_DATA, extraData.length));
        Bytes.putLong(extra, 0, vmState);
        Bytes.putLong(extra, 8, diskSizeOr(diskSize));
        Bytes.putLong(extra, 16, icount());
        return new Snapshot(l1TableOffset, l1Size, cString(idBytes), cString(nameBytes), dateSec, dateNsec,
                vmClockNsec, Long.compareUnsigned(vmState, 0xffffffffL) <= 0 ? vmState : 0, extra);
    }

    private static byte[] cString(byte[] s) {
        for (int i = 0; i < s.length; i++) {
            if (s[i] == 0) {
                return Arrays.copyOf(s, i);
            }
        }
        return s;
    }

    /** QEMU's 24-byte extra data. */
    public static byte[] extraData(long vmStateSize, long diskSize, long icount) {
        byte[] e = new byte[KNOWN_EXTRA_DATA];
        Bytes.putLong(e, 0, vmStateSize);
        Bytes.putLong(e, 8, diskSize);
        Bytes.putLong(e, 16, icount);
        return e;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Snapshot s && s.l1TableOffset == l1TableOffset && s.l1Size == l1Size
                && Arrays.equals(s.idBytes, idBytes) && Arrays.equals(s.nameBytes, nameBytes) && s.dateSec == dateSec
                && s.dateNsec == dateNsec
                && s.vmClockNsec == vmClockNsec && s.vmStateSize32 == vmStateSize32
                && Arrays.equals(s.extraData, extraData);
    }

    @Override
    public int hashCode() {
        return Long.hashCode(l1TableOffset) * 31 + Arrays.hashCode(idBytes) * 17 + Arrays.hashCode(nameBytes);
    }

    @Override
    public String toString() {
        return "Snapshot[id=" + id() + ", name=" + name() + ", l1TableOffset=" + l1TableOffset + ", l1Size="
                + Integer.toUnsignedLong(l1Size) + ", vmStateSize=" + vmStateSize() + "]";
    }
}
