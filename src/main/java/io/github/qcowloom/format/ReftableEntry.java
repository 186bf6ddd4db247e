package io.github.qcowloom.format;

/** Codec of a refcount table entry: the offset of a refblock, whose low bits are reserved. */
public final class ReftableEntry {
    private ReftableEntry() {
    }

    /** Reserved low bits (QEMU's REFT_RESERVED_MASK): must be zero, reported only by check. */
    public static final long RESERVED_MASK = 0x1ffL;

    /** The refblock offset the entry names, reserved bits dropped; 0 if it names none. */
    public static long refblockOffset(long entry) {
        return entry & ~RESERVED_MASK;
    }
}
