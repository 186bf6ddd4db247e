package io.github.qcowloom.api;

import java.util.Locale;
import java.util.Optional;

/**
 * QEMU's {@code detect-zeroes}: whether a guest's write whose data is all zeroes is made a zero write (no data
 * written; a qcow2 image marks its clusters zero), and whether that zero write may then unmap them.
 */
public enum DetectZeroes {
    /** Every write is written as it came. */
    OFF,
    /** A write of zeroes becomes a zero write that keeps what it covers allocated. */
    ON,
    /** A write of zeroes becomes a zero write that may unmap what it covers (needs discards passed on). */
    UNMAP;

    /** The name QEMU gives the mode: off, on, unmap. */
    public String qemuName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The mode QEMU names {@code name}, or empty for a name it does not know. */
    public static Optional<DetectZeroes> named(String name) {
        for (DetectZeroes d : values()) {
            if (d.qemuName().equals(name)) {
                return Optional.of(d);
            }
        }
        return Optional.empty();
    }
}
