package io.github.qcowloom.alloc;

/**
 * A host cluster just allocated for data (refcount 1, nothing references it yet). {@code fresh}: it reads as zeroes,
 * so a write into it need not write the zeroes around its data: it lay past the end of the file when it was handed
 * out, so it has never been written (every write extends the file over what it writes, and the file never shrinks
 * while open), or the cluster pool's supply zeroed it on the host before handing it out. Other clusters below the end
 * of the file, even never-written ones, are conservatively not fresh.
 */
public record NewCluster(HostOffset at, boolean fresh) {
}
