package io.github.qcowloom.storage;

import java.io.IOException;

/**
 * A storage whose {@link #flush()} writes nothing and asks the host for nothing: QEMU's {@code cache.no-flush},
 * which {@code cache=unsafe} sets. Every write still reaches the inner storage when made, in the order made, so
 * the file is whole once the process has closed it; only a host crash can lose what the page cache held.
 */
public final class UnsyncedStorage extends ForwardingStorage {
    public UnsyncedStorage(Storage inner) {
        super(inner);
    }

    /** Passed on: a zeroed range is a write like any other here (ForwardingStorage does not pass it on). */
    @Override
    public boolean zeroRange(long position, long length, boolean unmap) throws IOException {
        return inner().zeroRange(position, length, unmap);
    }

    /** Passed on, as {@link #zeroRange}: the inner storage zeroes the whole blocks of an unaligned range alone. */
    @Override
    public void zeroKeepingSpace(long position, long length) throws IOException {
        inner().zeroKeepingSpace(position, length);
    }

    @Override
    public void flush() {
        // no host sync: see the class comment
    }

    @Override
    public void flushRange(long position, long length) {
        // no host sync: see the class comment
    }
}
