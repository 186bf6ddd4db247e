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
        /** True if the byte at {@code offset} is dirty. */
        boolean dirty(long offset) throws IOException;

        /** Where the run of bytes in the state of the one at {@code offset} ends, at most {@code limit}. */
        long runEnd(long offset, long limit) throws IOException;
    }
}
