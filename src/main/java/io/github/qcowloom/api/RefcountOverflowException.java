package io.github.qcowloom.api;

/**
 * A reference count would exceed what the image's refcount width can hold (2^refcount_bits − 1): a snapshot of
 * an image with 1-bit refcounts, say, whose clusters would need a count of 2. The image is unchanged.
 */
public class RefcountOverflowException extends ImageException {
    private final long cluster;
    private final int refcountBits;

    public RefcountOverflowException(long cluster, int refcountBits, String message) {
        super(message);
        this.cluster = cluster;
        this.refcountBits = refcountBits;
    }

    /** The host cluster whose count would overflow. */
    public long cluster() {
        return cluster;
    }

    /** The image's refcount width. */
    public int refcountBits() {
        return refcountBits;
    }
}
