package io.github.qcowloom.api;

import java.util.Locale;
import java.util.Optional;

/**
 * QEMU's preallocation modes, for a new image ({@code create -o preallocation=}) and for the space a resize adds
 * ({@code resize --preallocation=}).
 */
public enum Preallocation {
    /** Nothing allocated: clusters are allocated as the guest writes them. */
    OFF,
    /** qcow2 only: every cluster gets its host cluster and L2 entry; the host file stays sparse there. */
    METADATA,
    /** As METADATA, and the host space reserved (fallocate), reading as zeroes. */
    FALLOC,
    /** As METADATA, and zeroes written over the host space. */
    FULL;

    /** The name QEMU gives the mode: off, metadata, falloc, full. */
    public String qemuName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /**
     * Refuses, in QEMU's words, a mode other than {@code OFF} for a resize that does not grow the disk: QEMU checks
     * it before it looks at --shrink, and for the same size too.
     */
    public void requireGrowth(long oldSize, long newSize) throws ImageException {
        if (this != OFF && newSize <= oldSize) {
            throw new ImageException("Preallocation can only be used for growing images");
        }
    }

    /** The mode QEMU names {@code name}, or empty for a name it does not know. */
    public static Optional<Preallocation> named(String name) {
        for (Preallocation p : values()) {
            if (p.qemuName().equals(name)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }
}
