package io.github.qcowloom.nbd;

/**
 * What a handshake agreed on.
 *
 * @param structuredReplies NBD_OPT_STRUCTURED_REPLY was acknowledged
 * @param baseAllocation base:allocation was selected by NBD_OPT_SET_META_CONTEXT (context id {@link Protocol#BASE_ALLOCATION_ID})
 * @param dirtyBitmap the export's qemu:dirty-bitmap context was selected (context id {@link Protocol#DIRTY_BITMAP_ID})
 * @param allocationDepth qemu:allocation-depth was selected (context id {@link Protocol#ALLOCATION_DEPTH_ID})
 */
record Session(boolean structuredReplies, boolean baseAllocation, boolean dirtyBitmap, boolean allocationDepth) {
    /** How many metadata contexts were selected: the chunks of each block status reply. */
    int contexts() {
        return (baseAllocation ? 1 : 0) + (dirtyBitmap ? 1 : 0) + (allocationDepth ? 1 : 0);
    }

    /** No metadata context selected. */
    Session(boolean structuredReplies) {
        this(structuredReplies, false, false, false);
    }
}
