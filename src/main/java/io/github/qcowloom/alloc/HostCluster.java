package io.github.qcowloom.alloc;

/** The index of a cluster of the image file: what a refcount counts references to (host offset >> cluster bits). */
public record HostCluster(long index) {
    public HostCluster plus(long n) {
        return new HostCluster(index + n);
    }
}
