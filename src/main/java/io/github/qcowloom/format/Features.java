package io.github.qcowloom.format;

/** Header feature bits (qcow2.h) and their default names, used when an image has no feature-name table. */
public final class Features {
    private Features() {
    }

    public static final long INCOMPAT_DIRTY = 1L;
    public static final long INCOMPAT_CORRUPT = 1L << 1;
    public static final long INCOMPAT_DATA_FILE = 1L << 2;
    public static final long INCOMPAT_COMPRESSION = 1L << 3;
    public static final long INCOMPAT_EXTL2 = 1L << 4;
    /** QCOW2_INCOMPAT_MASK: every incompatible bit this driver understands. */
    public static final long INCOMPAT_KNOWN = 0x1fL;

    public static final long COMPAT_LAZY_REFCOUNTS = 1L;

    public static final long AUTOCLEAR_BITMAPS = 1L;
    public static final long AUTOCLEAR_DATA_FILE_RAW = 1L << 1;
    public static final long AUTOCLEAR_KNOWN = 0x3L;

    public static final int TYPE_INCOMPATIBLE = 0;
    public static final int TYPE_COMPATIBLE = 1;
    public static final int TYPE_AUTOCLEAR = 2;

    /** The names QEMU writes into the feature-name table, in its order. */
    public static final FeatureName[] QEMU_NAMES = {
        new FeatureName(TYPE_INCOMPATIBLE, 0, "dirty bit"),
        new FeatureName(TYPE_INCOMPATIBLE, 1, "corrupt bit"),
        new FeatureName(TYPE_INCOMPATIBLE, 2, "external data file"),
        new FeatureName(TYPE_INCOMPATIBLE, 3, "compression type"),
        new FeatureName(TYPE_INCOMPATIBLE, 4, "extended L2 entries"),
        new FeatureName(TYPE_COMPATIBLE, 0, "lazy refcounts"),
        new FeatureName(TYPE_AUTOCLEAR, 0, "bitmaps"),
        new FeatureName(TYPE_AUTOCLEAR, 1, "raw external data"),
    };

    /** One entry of the feature-name table: type (0 incompatible, 1 compatible, 2 autoclear), bit number, name. */
    public record FeatureName(int type, int bit, String name) {
    }
}
