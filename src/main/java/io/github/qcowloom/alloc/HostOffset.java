package io.github.qcowloom.alloc;

/**
 * A byte offset in the image file (or in its external data file), where a raw {@code long} could as well be a guest
 * offset or a cluster index.
 */
public record HostOffset(long bytes) {
    /** The host cluster this offset lies in. */
    public HostCluster cluster(int clusterBits) {
        return new HostCluster(bytes >>> clusterBits);
    }

    public HostOffset plus(long n) {
        return new HostOffset(bytes + n);
    }

    @Override
    public String toString() {
        return String.format("%#x", bytes);
    }
}
