package io.github.qcowloom.api;

import java.util.Objects;
import java.util.Optional;

/**
 * What an image does with a guest's discards and zero writes: QEMU's {@code discard} and {@code detect-zeroes}
 * options, which its generic block layer applies before a request reaches the format driver.
 *
 * @param unmap QEMU's {@code discard=unmap} (BDRV_O_UNMAP): discards reach the image (a qcow2 image frees the
 *     clusters and gives the host their space back) and a zero write may unmap; false is {@code discard=ignore},
 *     qemu-nbd's and qemu-storage-daemon's default: a discard is checked, then dropped, and a zero write keeps
 *     what it covers allocated
 * @param detectZeroes whether writes of zeroes become zero writes
 */
public record DiscardPolicy(boolean unmap, DetectZeroes detectZeroes) {
    /** Discards passed on, no zero detection: the library's default, as qemu-io opens an image. */
    public static final DiscardPolicy UNMAP = new DiscardPolicy(true, DetectZeroes.OFF);
    /** Discards dropped, no zero detection: qemu-nbd's default. */
    public static final DiscardPolicy IGNORE = new DiscardPolicy(false, DetectZeroes.OFF);

    /** QEMU's refusal of {@code detect-zeroes=unmap} where discards are ignored. */
    public static final String UNMAP_NEEDS_DISCARD = "setting detect-zeroes to unmap is not allowed without setting"
            + " discard operation to unmap";

    public DiscardPolicy {
        Objects.requireNonNull(detectZeroes, "detectZeroes");
        if (detectZeroes == DetectZeroes.UNMAP && !unmap) {
            throw new IllegalArgumentException(UNMAP_NEEDS_DISCARD);
        }
    }

    /**
     * Whether QEMU's {@code discard} option {@code mode} unmaps: on and unmap do, off and ignore do not; empty for a
     * mode it does not know (bdrv_parse_discard_flags).
     */
    public static Optional<Boolean> unmaps(String mode) {
        return switch (mode) {
            case "on", "unmap" -> Optional.of(true);
            case "off", "ignore" -> Optional.of(false);
            default -> Optional.empty();
        };
    }

    /** Whether a zero write asked to unmap ({@code asked}) may: only where discards are passed on. */
    public boolean mayUnmap(boolean asked) {
        return asked && unmap;
    }

    public DiscardPolicy withDetectZeroes(DetectZeroes v) {
        return new DiscardPolicy(unmap, v);
    }
}
