package io.github.qcowloom.api;

/**
 * What {@code create} makes, with qemu-img's option names in the comments and QEMU's defaults in
 * {@link #defaults(long)}.
 *
 * @param size virtual size in bytes (rounded up to 512, as qemu-img does)
 * @param version 2 ({@code compat=0.10}) or 3 ({@code compat=1.1})
 * @param clusterSize {@code cluster_size}, a power of two from 512 to 2 MiB
 * @param refcountBits {@code refcount_bits}, a power of two from 1 to 64
 * @param lazyRefcounts {@code lazy_refcounts}
 * @param extendedL2 {@code extended_l2}
 * @param compressionType {@code compression_type}: "zlib" or "zstd"
 * @param backingFile {@code backing_file} (-b), stored as given, or null
 * @param backingFormat {@code backing_fmt} (-F), or null
 * @param preallocation {@code preallocation}: "off", "metadata", "falloc" or "full" (see {@link Preallocation})
 * @param dataFile {@code data_file}, stored as given and created beside the image, or null
 * @param dataFileRaw {@code data_file_raw}
 */
public record CreateOptions(
        long size,
        int version,
        int clusterSize,
        int refcountBits,
        boolean lazyRefcounts,
        boolean extendedL2,
        String compressionType,
        String backingFile,
        String backingFormat,
        String preallocation,
        String dataFile,
        boolean dataFileRaw) {

    /** qemu-img's defaults: compat=1.1, 64 KiB clusters, 16-bit refcounts, zlib, no preallocation. */
    public static CreateOptions defaults(long size) {
        return new CreateOptions(size, 3, 65536, 16, false, false, "zlib", null, null, "off", null, false);
    }

    public CreateOptions withSize(long v) {
        return new CreateOptions(v, version, clusterSize, refcountBits, lazyRefcounts, extendedL2, compressionType,
                backingFile, backingFormat, preallocation, dataFile, dataFileRaw);
    }

    public CreateOptions withVersion(int v) {
        return new CreateOptions(size, v, clusterSize, refcountBits, lazyRefcounts, extendedL2, compressionType,
                backingFile, backingFormat, preallocation, dataFile, dataFileRaw);
    }

    public CreateOptions withClusterSize(int v) {
        return new CreateOptions(size, version, v, refcountBits, lazyRefcounts, extendedL2, compressionType,
                backingFile, backingFormat, preallocation, dataFile, dataFileRaw);
    }

    public CreateOptions withRefcountBits(int v) {
        return new CreateOptions(size, version, clusterSize, v, lazyRefcounts, extendedL2, compressionType,
                backingFile, backingFormat, preallocation, dataFile, dataFileRaw);
    }

    public CreateOptions withLazyRefcounts(boolean v) {
        return new CreateOptions(size, version, clusterSize, refcountBits, v, extendedL2, compressionType,
                backingFile, backingFormat, preallocation, dataFile, dataFileRaw);
    }

    public CreateOptions withExtendedL2(boolean v) {
        return new CreateOptions(size, version, clusterSize, refcountBits, lazyRefcounts, v, compressionType,
                backingFile, backingFormat, preallocation, dataFile, dataFileRaw);
    }

    public CreateOptions withCompressionType(String v) {
        return new CreateOptions(size, version, clusterSize, refcountBits, lazyRefcounts, extendedL2, v,
                backingFile, backingFormat, preallocation, dataFile, dataFileRaw);
    }

    public CreateOptions withBacking(String file, String format) {
        return new CreateOptions(size, version, clusterSize, refcountBits, lazyRefcounts, extendedL2,
                compressionType, file, format, preallocation, dataFile, dataFileRaw);
    }

    public CreateOptions withPreallocation(String v) {
        return new CreateOptions(size, version, clusterSize, refcountBits, lazyRefcounts, extendedL2,
                compressionType, backingFile, backingFormat, v, dataFile, dataFileRaw);
    }

    public CreateOptions withDataFile(String file, boolean raw) {
        return new CreateOptions(size, version, clusterSize, refcountBits, lazyRefcounts, extendedL2,
                compressionType, backingFile, backingFormat, preallocation, file, raw);
    }
}
