package io.github.qcowloom.cli;

/**
 * qemu-img's cache modes as far as the host file is concerned: "none" and "directsync" bypass the page cache,
 * "unsafe" never syncs it (for convert's target; bench and create sync as they always do).
 */
final class CacheMode {
    private CacheMode() {
    }

    static boolean direct(String mode) {
        return switch (mode) {
            case "none", "off", "directsync" -> true; // "off": QEMU's other name for none
            case "writeback", "writethrough", "unsafe" -> false;
            default -> throw new IllegalArgumentException("Invalid cache option: " + mode);
        };
    }

    /** False for "unsafe", whose flushes QEMU ignores (cache.no-flush). */
    static boolean syncs(String mode) {
        direct(mode); // rejects unknown modes
        return !mode.equals("unsafe");
    }
}
