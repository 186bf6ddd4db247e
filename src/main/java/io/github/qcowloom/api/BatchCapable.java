package io.github.qcowloom.api;

import java.io.IOException;

/**
 * A device that can allocate a batch's clusters up front (the 2010 design thread's alternative to a preallocated
 * pool): the caller counts what a batch of writes will allocate, reserves that many clusters in one refcount
 * update, then issues the writes, which take the reserved clusters without touching the refcounts.
 */
public interface BatchCapable {
    /** How many host clusters a write of {@code length} bytes at {@code offset} would allocate now. */
    int clustersToAllocate(long offset, long length) throws IOException;

    /** Allocates {@code clusters} clusters in one refcount update for the writes that follow. */
    void reserve(int clusters) throws IOException;
}
