package io.github.qcowloom.storage;

import io.github.qcowloom.api.ImageLocking;

/**
 * The permissions an open holds on a file in QEMU's terms (block.h's {@code BLK_PERM_*}): the bits it takes, and
 * the bits it lets others take. {@link ImageLock} turns them into lock bytes {@code 100 + bit} (taken) and
 * {@code 200 + bit} (not shared). The sets below are what QEMU 7.2 holds, read from its fcntl calls and
 * /proc/locks for each qemu-img command, qemu-io and qemu-nbd.
 *
 * @param perm the bits taken
 * @param shared the bits others may take
 */
public record LockPermissions(int perm, int shared) {
    public static final int CONSISTENT_READ = 1;
    public static final int WRITE = 2;
    public static final int WRITE_UNCHANGED = 4;
    public static final int RESIZE = 8;
    public static final int ALL = 15;

    /** Takes and refuses nothing: no lock bytes, no lock descriptor. */
    public static final LockPermissions NONE = new LockPermissions(0, ALL);

    public LockPermissions {
        if ((perm & ~ALL) != 0 || (shared & ~ALL) != 0) {
            throw new IllegalArgumentException("unknown permission bits " + perm + "/" + shared);
        }
    }

    /** A writer of the image (qemu-img resize, snapshot -c, check -r, convert's target, qemu-nbd, qemu-io). */
    public static LockPermissions readWrite() {
        return new LockPermissions(CONSISTENT_READ | WRITE | RESIZE, ALL & ~(WRITE | RESIZE));
    }

    /** A reader that wants the image to hold still (qemu-img check, map, convert's source; a backing file). */
    public static LockPermissions readOnly() {
        return new LockPermissions(CONSISTENT_READ, ALL & ~(WRITE | RESIZE));
    }

    /** qemu-img info: reads no data, still refuses writers. */
    public static LockPermissions metadataOnly() {
        return new LockPermissions(0, ALL & ~(WRITE | RESIZE));
    }

    /** {@code -U}: reads, and lets anyone do anything. */
    public static LockPermissions forceShare() {
        return new LockPermissions(CONSISTENT_READ, ALL);
    }

    /** An external data file: QEMU shares writes to it and refuses only resizes. */
    public static LockPermissions dataFile(boolean readOnly) {
        return new LockPermissions(readOnly ? CONSISTENT_READ : CONSISTENT_READ | WRITE | RESIZE, ALL & ~RESIZE);
    }

    /** What the image file itself is held with, for an open in mode {@code locking}. */
    public static LockPermissions forImage(ImageLocking locking, boolean readOnly) {
        return switch (locking) {
            case DEFAULT -> readOnly ? readOnly() : readWrite();
            case STILL_SOURCE -> readOnly();
            case METADATA_ONLY -> metadataOnly();
            case FORCE_SHARE -> forceShare();
            case NONE -> NONE;
        };
    }

    /** What a backing file (always opened read-only) is held with, for an open in mode {@code locking}. */
    public static LockPermissions forBacking(ImageLocking locking) {
        return switch (locking) {
            case DEFAULT, STILL_SOURCE, METADATA_ONLY -> readOnly();
            case FORCE_SHARE -> forceShare();
            case NONE -> NONE;
        };
    }

    /** What an external data file is held with, for an open in mode {@code locking}. */
    public static LockPermissions forDataFile(ImageLocking locking, boolean readOnly) {
        return switch (locking) {
            case DEFAULT, METADATA_ONLY -> dataFile(readOnly);
            case STILL_SOURCE -> readOnly();
            case FORCE_SHARE -> forceShare();
            case NONE -> NONE;
        };
    }

    /** True if this takes no lock byte at all. */
    public boolean isNone() {
        return perm == 0 && shared == ALL;
    }

    /** QEMU's name of one permission bit (bdrv_perm_names). */
    static String name(int bit) {
        return switch (bit) {
            case CONSISTENT_READ -> "consistent read";
            case WRITE -> "write";
            case WRITE_UNCHANGED -> "write unchanged";
            case RESIZE -> "resize";
            default -> throw new IllegalArgumentException("permission bit " + bit);
        };
    }
}
