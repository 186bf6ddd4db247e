package io.github.qcowloom.alloc;

/**
 * A host cluster just allocated for data (refcount 1, nothing references it yet). {@code fresh}: it lay past the end
 * of the file when it was handed out, so it has never been written (every write extends the file over what it
 * writes, and the file never shrinks while open) and reads as zeroes; a write into it need not write the zeroes
 * around its data. Clusters below the end of the file, even never-written ones, are conservatively not fresh.
 */
public record NewCluster(HostOffset at, boolean fresh) {
}
