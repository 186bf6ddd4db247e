package io.github.qcowloom.format;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/** Big-endian accessors on byte arrays: every qcow2 field is big-endian. */
public final class Bytes {
    private static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle INT = MethodHandles.byteArrayViewVarHandle(int[].class, ByteOrder.BIG_ENDIAN);
    private static final VarHandle SHORT = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.BIG_ENDIAN);

    private Bytes() {
    }

    /** {@code value} as C's {@code %#x} prints it, as QEMU's messages show offsets: 0 without a prefix. */
    public static String cHex(long value) {
        return value == 0 ? "0" : "0x" + Long.toHexString(value);
    }

    public static long getLong(byte[] b, int off) {
        return (long) LONG.get(b, off);
    }

    public static void putLong(byte[] b, int off, long v) {
        LONG.set(b, off, v);
    }

    public static int getInt(byte[] b, int off) {
        return (int) INT.get(b, off);
    }

    /** An unsigned 32-bit field widened to long. */
    public static long getUInt(byte[] b, int off) {
        return Integer.toUnsignedLong(getInt(b, off));
    }

    public static void putInt(byte[] b, int off, int v) {
        INT.set(b, off, v);
    }

    public static int getUShort(byte[] b, int off) {
        return Short.toUnsignedInt((short) SHORT.get(b, off));
    }

    public static void putShort(byte[] b, int off, int v) {
        SHORT.set(b, off, (short) v);
    }

    /** Rounds {@code v} up to a multiple of the power of two {@code align}. */
    public static long alignUp(long v, long align) {
        return (v + align - 1) & -align;
    }
}
