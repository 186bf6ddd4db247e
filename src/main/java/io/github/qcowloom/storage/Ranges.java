package io.github.qcowloom.storage;

/** Argument checks shared by the storage implementations: positions and lengths are never negative. */
final class Ranges {
    private Ranges() {
    }

    static void checkPosition(long position) {
        if (position < 0) {
            throw new IllegalArgumentException("negative position: " + position);
        }
    }

    static void checkRange(long position, long length) {
        checkPosition(position);
        if (length < 0) {
            throw new IllegalArgumentException("negative length: " + length);
        }
    }
}
