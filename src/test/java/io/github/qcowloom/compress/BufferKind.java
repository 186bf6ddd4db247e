package io.github.qcowloom.compress;

import java.nio.ByteBuffer;
import java.util.Arrays;

/** The shapes of ByteBuffer a codec must accept, each between guard bytes it must neither read nor touch. */
enum BufferKind {
    HEAP,
    HEAP_SLICE,
    DIRECT,
    READ_ONLY_HEAP,
    READ_ONLY_DIRECT;

    private static final int GUARD = 7;
    private static final byte GUARD_BYTE = (byte) 0xA5;
    private static final byte STALE_BYTE = (byte) 0x5A;

    boolean writable() {
        return !name().startsWith("READ_ONLY");
    }

    /** A buffer whose remaining bytes are {@code data}, at a non-zero position or array offset. */
    ByteBuffer wrap(byte[] data) {
        return switch (this) {
            case HEAP -> ByteBuffer.wrap(guarded(data), GUARD, data.length);
            case HEAP_SLICE -> HEAP.wrap(data).slice();
            case DIRECT -> ByteBuffer.allocateDirect(data.length + 2 * GUARD)
                    .put(guarded(data))
                    .position(GUARD)
                    .limit(GUARD + data.length);
            case READ_ONLY_HEAP -> HEAP.wrap(data).asReadOnlyBuffer();
            case READ_ONLY_DIRECT -> DIRECT.wrap(data).asReadOnlyBuffer();
        };
    }

    /** A destination of {@code size} bytes holding stale non-zero bytes, so skipped writes show. */
    ByteBuffer allocate(int size) {
        byte[] stale = new byte[size];
        Arrays.fill(stale, STALE_BYTE);
        return wrap(stale);
    }

    /** The remaining bytes, leaving the buffer as it is. */
    static byte[] remaining(ByteBuffer buffer) {
        byte[] bytes = new byte[buffer.remaining()];
        buffer.get(buffer.position(), bytes);
        return bytes;
    }

    /** Whether the guard bytes around a buffer made by {@link #wrap} are intact. */
    static boolean guardsIntact(ByteBuffer buffer) {
        ByteBuffer whole = buffer.hasArray() ? ByteBuffer.wrap(buffer.array()) : buffer.duplicate().clear();
        int end = whole.capacity();
        for (int i = 0; i < GUARD; i++) {
            if (whole.get(i) != GUARD_BYTE || whole.get(end - 1 - i) != GUARD_BYTE) {
                return false;
            }
        }
        return true;
    }

    private static byte[] guarded(byte[] data) {
        byte[] array = new byte[data.length + 2 * GUARD];
        Arrays.fill(array, GUARD_BYTE);
        System.arraycopy(data, 0, array, GUARD, data.length);
        return array;
    }
}
