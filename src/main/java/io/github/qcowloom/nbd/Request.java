package io.github.qcowloom.nbd;

import java.nio.ByteBuffer;

/**
 * One request as received (proto.md "Request message"): command flags, type, cookie, offset, length and, for
 * WRITE, the payload.
 */
record Request(int flags, int type, long cookie, long offset, long length, ByteBuffer payload) {
    boolean has(int flag) {
        return (flags & flag) != 0;
    }

    /** True when offset and length lie inside a device of {@code size} bytes (offset is an unsigned u64). */
    boolean inside(long size) {
        return offset >= 0 && offset <= size && length <= size - offset;
    }
}
