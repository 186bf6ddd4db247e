package io.github.qcowloom.api;

/**
 * Which of QEMU's lock bytes an open takes on the image file and on its backing and data files (qcow2.md §8),
 * so that QEMU's tools and ours refuse each other as QEMU's refuse themselves.
 */
public enum ImageLocking {
    /**
     * What qemu-img takes for the open mode: read-write claims consistent read, write and resize and shares
     * neither writes nor resizes; read-only claims consistent read and shares no writes or resizes either.
     * Backing files are held as read-only opens; an external data file shares writes.
     */
    DEFAULT,
    /**
     * qemu-img convert's source: read-only, and holds an external data file still as well (consistent read, no
     * writes or resizes by others), where {@link #DEFAULT} lets another process write it. qemu-img convert is refused
     * while a qemu-io or qemu-nbd writes the source's data file; its check, map, compare and dd are not.
     */
    STILL_SOURCE,
    /** qemu-img info: reads metadata only, so claims nothing, but still refuses a writer. */
    METADATA_ONLY,
    /** {@code -U} / {@code --force-share}: read-only, claims consistent read, shares everything. */
    FORCE_SHARE,
    /** No lock bytes at all (qemu-img info -U; qemu-img create's look at a backing file's size). */
    NONE
}
