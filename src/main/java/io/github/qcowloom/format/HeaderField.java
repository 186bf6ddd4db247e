package io.github.qcowloom.format;

import java.nio.ByteBuffer;

/**
 * The fields of the qcow2 header (QEMU's QCowHeader, docs/interop/qcow2.txt; qcow2.md §1): name, byte offset and
 * width, all big-endian. The one place these offsets are written down: {@link Header} parses and encodes with it,
 * and every writer that changes a field in place (size, L1 pointer, refcount table pointer, snapshot pointer,
 * feature words) writes the bytes {@link #encode} gives at {@link #offset()}.
 */
public enum HeaderField {
    MAGIC(0, 4, 2),
    VERSION(4, 4, 2),
    BACKING_FILE_OFFSET(8, 8, 2),
    BACKING_FILE_SIZE(16, 4, 2),
    CLUSTER_BITS(20, 4, 2),
    SIZE(24, 8, 2),
    CRYPT_METHOD(32, 4, 2),
    L1_SIZE(36, 4, 2),
    L1_TABLE_OFFSET(40, 8, 2),
    REFCOUNT_TABLE_OFFSET(48, 8, 2),
    REFCOUNT_TABLE_CLUSTERS(56, 4, 2),
    NB_SNAPSHOTS(60, 4, 2),
    SNAPSHOTS_OFFSET(64, 8, 2),
    INCOMPATIBLE_FEATURES(72, 8, 3),
    COMPATIBLE_FEATURES(80, 8, 3),
    AUTOCLEAR_FEATURES(88, 8, 3),
    REFCOUNT_ORDER(96, 4, 3),
    HEADER_LENGTH(100, 4, 3),
    /** Present only when header_length is more than 104. */
    COMPRESSION_TYPE(104, 1, 3);

    private final int offset;
    private final int width;
    private final int version;

    HeaderField(int offset, int width, int version) {
        this.offset = offset;
        this.width = width;
        this.version = version;
    }

    /** Byte offset in cluster 0. */
    public int offset() {
        return offset;
    }

    /** Width in bytes: 1, 4 or 8. */
    public int width() {
        return width;
    }

    /** The first header version that has the field: 2, or 3 for the fields past the v2 header's 72 bytes. */
    public int version() {
        return version;
    }

    /** The field's name in QEMU's QCowHeader and the spec (size, l1_table_offset, ...). */
    public String specName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }

    /** The field read from {@code header}, unsigned (a u32 widened, a u64 as its bits). */
    public long get(byte[] header) {
        return switch (width) {
            case 1 -> header[offset] & 0xff;
            case 4 -> Bytes.getUInt(header, offset);
            default -> Bytes.getLong(header, offset);
        };
    }

    /** The field's signed 32-bit value (for the u32 fields kept in an int); only for 4-byte fields. */
    public int getInt(byte[] header) {
        requireWidth(4);
        return Bytes.getInt(header, offset);
    }

    /** Stores the low {@link #width()} bytes of {@code value} into {@code header}. */
    public void put(byte[] header, long value) {
        switch (width) {
            case 1 -> header[offset] = (byte) value;
            case 4 -> Bytes.putInt(header, offset, (int) value);
            default -> Bytes.putLong(header, offset, value);
        }
    }

    /**
     * The bytes to write at {@link #offset()} for this field and the ones that follow it in the header, one value
     * a field: {@code L1_SIZE.encode(entries, tableOffset)} is the 12-byte write that points the header at a new
     * L1 table in one sector, as QEMU writes it.
     *
     * @throws IllegalArgumentException if there are more values than fields after this one, or none
     */
    public ByteBuffer encode(long... values) {
        HeaderField[] all = values();
        if (values.length == 0 || ordinal() + values.length > all.length) {
            throw new IllegalArgumentException(values.length + " values from header field " + specName());
        }
        HeaderField last = all[ordinal() + values.length - 1];
        byte[] bytes = new byte[last.offset + last.width];
        for (int i = 0; i < values.length; i++) {
            all[ordinal() + i].put(bytes, values[i]);
        }
        return ByteBuffer.wrap(bytes, offset, bytes.length - offset).slice();
    }

    private void requireWidth(int expected) {
        if (width != expected) {
            throw new IllegalStateException(specName() + " is " + width + " bytes wide, not " + expected);
        }
    }
}
