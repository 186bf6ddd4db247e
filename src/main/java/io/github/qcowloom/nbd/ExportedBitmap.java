package io.github.qcowloom.nbd;

import java.io.IOException;

/**
 * A dirty bitmap exported as the {@code qemu:dirty-bitmap:NAME} metadata context, as qemu-nbd {@code -B NAME}
 * exports one: a block status extent of it is dirty (flag 1) or clean (0).
 */
public interface ExportedBitmap {
    /** The bitmap's name, which names the context. */
    String name();

    /** The bitmap's runs for one request: a reader of its own. */
    Runs runs();

    /** Runs of dirty and clean bytes. */
    interface Runs {
        /**
         * The run of bytes from {@code offset} in the state of the one there, up to {@code limit} at most: read
         * once, so that bits set meanwhile cannot make it empty.
         */
        Run run(long offset, long limit) throws IOException;
    }

    /**
     * A run of bytes in one state.
     *
     * @param end where it ends (exclusive), past its start
     * @param dirty its state
     */
    record Run(long end, boolean dirty) {
    }
}
