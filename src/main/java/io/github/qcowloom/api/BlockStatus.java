package io.github.qcowloom.api;

/**
 * How the guest bytes from some offset are stored, as QEMU's block status reports them through the backing chain:
 * the answer of the first layer that holds the range, or, when no layer holds it, of the layer that decided it
 * reads as zeroes (the bottom of the chain, or the layer whose backing file ends before the range).
 *
 * @param length bytes from the queried offset that share this status; at least 1
 * @param depth the layer that answered: 0 the device itself, 1 its backing file, and so on
 * @param allocation what that layer holds there
 * @param host where that layer keeps the bytes, or null where they lie in no file as such (compressed, plain
 *     zero, unallocated) or the device cannot say
 */
public record BlockStatus(long length, int depth, Allocation allocation, Host host) {
    /** What one layer holds for a range. */
    public enum Allocation {
        /** Data stored as is: it reads from {@link #host()} when that is known. */
        DATA,
        /**
         * A data cluster whose host bytes lie in a hole of the file (never written, as after {@code
         * preallocation=metadata}): it reads as zeroes, and QEMU reports it as both data and zero. Reported only
         * where QEMU looks into the file (BDRV_BLOCK_RECURSE: an image that looks preallocated that way).
         */
        UNWRITTEN,
        /** Data stored compressed (no host offset to read it from directly). */
        COMPRESSED,
        /** Marked as reading zeroes (a zero cluster or subcluster, preallocated or not). */
        ZERO,
        /** Held by no layer of the chain: reads as zeroes. */
        UNALLOCATED,
        /**
         * Held by no layer down to the answering one, whose backing file ends before the range: reads as zeroes,
         * which QEMU counts as allocated in that short backing file ({@link #allocationDepth()}).
         */
        PAST_BACKING_END
    }

    /** Which file of the answering layer holds the bytes. */
    public enum HostFile {
        /** The layer's own file (the qcow2 image, or the raw file). */
        IMAGE,
        /** The qcow2 layer's external data file. */
        DATA_FILE
    }

    /** A byte position in a file of the answering layer. */
    public record Host(HostFile file, long offset) {
        public Host {
            if (file == null || offset < 0) {
                throw new IllegalArgumentException("host " + file + " at " + offset);
            }
        }
    }

    public BlockStatus {
        if (length <= 0 || depth < 0 || allocation == null) {
            throw new IllegalArgumentException("block status of " + length + " bytes at depth " + depth + ": "
                    + allocation);
        }
    }

    /**
     * Some layer holds the range (qemu-img map's "present"; QEMU's BDRV_BLOCK_ALLOCATED but for zeroes past a short
     * backing file's end, which QEMU counts as that file's: see {@link #allocationDepth()}).
     */
    public boolean present() {
        return allocated() && allocation != Allocation.PAST_BACKING_END;
    }

    /**
     * QEMU's BDRV_BLOCK_ALLOCATED (what qemu-img compare -s compares): some layer holds the range, or it lies past
     * the end of a shorter backing file.
     */
    public boolean allocated() {
        return allocation != Allocation.UNALLOCATED;
    }

    /**
     * The layer that holds the range as QEMU's bdrv_is_allocated_above counts it (qemu-nbd's qemu:allocation-depth):
     * 1 the device itself, 2 its backing file and so on, the short backing file for zeroes past its end, and 0
     * where no layer of the chain holds it.
     */
    public int allocationDepth() {
        return switch (allocation) {
            case UNALLOCATED -> 0;
            case PAST_BACKING_END -> depth + 2;
            default -> depth + 1;
        };
    }

    /** The range reads as zeroes (BDRV_BLOCK_ZERO). */
    public boolean zero() {
        return allocation == Allocation.ZERO || allocation == Allocation.UNALLOCATED
                || allocation == Allocation.PAST_BACKING_END || allocation == Allocation.UNWRITTEN;
    }

    /** The layer stores data for the range (BDRV_BLOCK_DATA); false is NBD's "hole". */
    public boolean data() {
        return allocation == Allocation.DATA || allocation == Allocation.COMPRESSED
                || allocation == Allocation.UNWRITTEN;
    }

    public boolean compressed() {
        return allocation == Allocation.COMPRESSED;
    }

    /** The same status seen from one layer up the chain (the device whose backing file this is). */
    public BlockStatus fromBacking() {
        return new BlockStatus(length, depth + 1, allocation, host);
    }
}
