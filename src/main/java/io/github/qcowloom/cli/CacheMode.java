package io.github.qcowloom.cli;

/** qemu-img's cache modes as far as the host file is concerned: "none" and "directsync" bypass the page cache. */
final class CacheMode {
    private CacheMode() {
    }

    static boolean direct(String mode) {
        return switch (mode) {
            case "none", "directsync" -> true;
            case "writeback", "writethrough", "unsafe" -> false;
            default -> throw new IllegalArgumentException("Invalid cache option: " + mode);
        };
    }
}
