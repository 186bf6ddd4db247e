package io.github.qcowloom.nbd;

import io.github.qcowloom.api.BlockDevice;

/**
 * The one export a server offers: its name and description for NBD_OPT_LIST and the shared device behind every
 * connection.
 *
 * @param name what a client must ask for, as of qemu-nbd's one export ({@code -x}; the empty name is qemu-nbd's
 *     default): another name is refused
 * @param description what NBD_OPT_LIST and NBD_INFO_DESCRIPTION tell of it ({@code -D}); null for nothing
 * @param device shared by all connections, so a flush on one covers writes acknowledged on all (what CAN_MULTI_CONN
 *     promises)
 * @param readOnly advertise READ_ONLY and answer writes with EPERM
 * @param bitmap the dirty bitmap offered as a {@code qemu:dirty-bitmap:} metadata context; null for none
 * @param allocationDepth offer the {@code qemu:allocation-depth} metadata context (qemu-nbd -A)
 * @param writeThrough make every write and zero write durable before it is acknowledged, as if the client had
 *     asked for FUA
 *     (QEMU's export option {@code writethrough}: qemu-nbd's cache modes writethrough and directsync)
 */
public record Export(String name, String description, BlockDevice device, boolean readOnly, ExportedBitmap bitmap,
        boolean allocationDepth, boolean writeThrough) {
    /** An export that leaves durability to the client's flushes and FUA. */
    public Export(String name, String description, BlockDevice device, boolean readOnly, ExportedBitmap bitmap,
            boolean allocationDepth) {
        this(name, description, device, readOnly, bitmap, allocationDepth, false);
    }

    /** An export of qemu-nbd's default name, the empty one, with no description and no allocation depth. */
    public Export(BlockDevice device, boolean readOnly, ExportedBitmap bitmap) {
        this("", null, device, readOnly, bitmap, false);
    }

    /** An export of qemu-nbd's default name, the empty one, with no description and no bitmap. */
    public Export(BlockDevice device, boolean readOnly) {
        this(device, readOnly, null);
    }

    /** The bitmap's context name, or null. */
    String bitmapContext() {
        return bitmap == null ? null : Protocol.DIRTY_BITMAP_PREFIX + bitmap.name();
    }

    /**
     * Transmission flags for this export (proto.md "Transmission flags"), qemu-nbd's: trims and zero writes (fast
     * ones too) are offered only where the export takes writes.
     *
     * @param multiConn advertise CAN_MULTI_CONN: qemu-nbd does unless it serves one client at a time ({@code -e 1}),
     *     since a client that opens several connections on the flag would wait forever for the second
     */
    int transmissionFlags(boolean structuredReplies, boolean multiConn) {
        int f = Protocol.TF_HAS_FLAGS | Protocol.TF_SEND_FLUSH | Protocol.TF_SEND_FUA | Protocol.TF_SEND_CACHE;
        if (multiConn) {
            f |= Protocol.TF_CAN_MULTI_CONN;
        }
        if (readOnly) {
            f |= Protocol.TF_READ_ONLY;
        } else {
            f |= Protocol.TF_SEND_TRIM | Protocol.TF_SEND_WRITE_ZEROES | Protocol.TF_SEND_FAST_ZERO;
        }
        // A read is always answered in one chunk, so DF holds whenever structured replies exist.
        if (structuredReplies) {
            f |= Protocol.TF_SEND_DF;
        }
        return f;
    }
}
