package io.github.qcowloom.storage;

import java.util.Locale;

/** A point in the driver's metadata updates where an I/O error may be injected, named as QEMU's blkdebug does. */
public enum StorageEvent {
    /** An L1 entry is about to be written. */
    L1_UPDATE,
    /** The L1 table is about to grow (new table written, header switched). */
    L1_GROW,
    /** An L2 table (slice) is about to be read. */
    L2_LOAD,
    /** An L2 entry (slice) is about to be written. */
    L2_UPDATE,
    /** A new L2 table is about to be allocated and written. */
    L2_ALLOC,
    /** A new refcount block is about to be allocated and written. */
    REFBLOCK_ALLOC,
    /** The refcount table is about to grow. */
    REFTABLE_GROW,
    /** Data clusters are about to be allocated (refcounts raised). */
    CLUSTER_ALLOC,
    /** Clusters are about to be freed (refcounts lowered). */
    CLUSTER_FREE,
    /** Copy-on-write is about to read the old data around a partial write. */
    COW_READ,
    /** Copy-on-write is about to write the merged cluster. */
    COW_WRITE,
    /** A flush is about to reach the host. */
    FLUSH,
    /**
     * A table slice was just found in the cache or loaded into it, and is about to be used: no I/O follows, but the
     * interleaving explorer ({@code simulation.SimStorage}) switches threads here, where another request's
     * eviction could otherwise race the caller unseen. Not one of blkdebug's events ({@link #blkdebugName} names
     * it in blkdebug's style all the same).
     */
    CACHE_LOOKUP;

    /** blkdebug's name: {@code l1_update}, {@code refblock_alloc}, ... */
    public String blkdebugName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
