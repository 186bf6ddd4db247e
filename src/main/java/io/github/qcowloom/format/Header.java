package io.github.qcowloom.format;

import io.github.qcowloom.api.CorruptImageException;
import io.github.qcowloom.api.ImageTooLargeException;
import io.github.qcowloom.api.UnsupportedFeatureException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The qcow2 header (v2 and v3) with its extensions and backing file name: everything stored in cluster 0.
 * {@link #parse} validates every field as QEMU's qcow2_do_open does before any size read from the file is
 * used; {@link #encode} writes it back the way QEMU's qcow2_update_header lays it out.
 */
public record Header(
        int version,
        long backingFileOffset,
        int backingFileSize,
        int clusterBits,
        long size,
        int cryptMethod,
        int l1Size,
        long l1TableOffset,
        long refcountTableOffset,
        int refcountTableClusters,
        int nbSnapshots,
        long snapshotsOffset,
        long incompatibleFeatures,
        long compatibleFeatures,
        long autoclearFeatures,
        int refcountOrder,
        int headerLength,
        int compressionType,
        List<HeaderExtension> extensions,
        String backingFile) {

    public static final int MAGIC = 0x514649fb;

    public Header {
        extensions = List.copyOf(extensions);
    }

    public long clusterSize() {
        return 1L << clusterBits;
    }

    /** The virtual size in whole 512-byte sectors, as QEMU serves it (bs->total_sectors): the disk's size. */
    public long diskSize() {
        return size & -512L;
    }

    public boolean extendedL2() {
        return (incompatibleFeatures & Features.INCOMPAT_EXTL2) != 0;
    }

    /** Bytes per L2 entry: 8, or 16 with extended L2. */
    public int l2EntrySize() {
        return extendedL2() ? 16 : 8;
    }

    /** log2 of the number of entries in one L2 table. */
    public int l2Bits() {
        return clusterBits - (extendedL2() ? 4 : 3);
    }

    public int refcountBits() {
        return 1 << refcountOrder;
    }

    public boolean dirty() {
        return (incompatibleFeatures & Features.INCOMPAT_DIRTY) != 0;
    }

    public boolean corrupt() {
        return (incompatibleFeatures & Features.INCOMPAT_CORRUPT) != 0;
    }

    public boolean lazyRefcounts() {
        return (compatibleFeatures & Features.COMPAT_LAZY_REFCOUNTS) != 0;
    }

    public boolean hasDataFile() {
        return (incompatibleFeatures & Features.INCOMPAT_DATA_FILE) != 0;
    }

    public boolean dataFileRaw() {
        return (autoclearFeatures & Features.AUTOCLEAR_DATA_FILE_RAW) != 0;
    }

    public Optional<HeaderExtension> extension(int type) {
        return extensions.stream().filter(e -> e.type() == type).findFirst();
    }

    /** The backing format name, up to its first NUL byte as QEMU reads it (a C string). */
    public Optional<String> backingFormat() {
        return extension(HeaderExtension.BACKING_FORMAT).map(e -> cString(e.data(), 0, e.data().length));
    }

    /** The external data file name, up to its first NUL byte as QEMU reads it (g_strndup). */
    public Optional<String> dataFile() {
        return extension(HeaderExtension.DATA_FILE).map(e -> cString(e.data(), 0, e.data().length));
    }

    /** Whether the guest data is encrypted: with AES (crypt_method 1) or LUKS (2). */
    public boolean encrypted() {
        return cryptMethod != 0;
    }

    /** Whether the guest data is encrypted with LUKS (crypt_method 2). */
    public boolean luksEncrypted() {
        return cryptMethod == 2;
    }

    /** Whether the guest data is encrypted with the AES-CBC of images before LUKS (crypt_method 1). */
    public boolean aesEncrypted() {
        return cryptMethod == 1;
    }

    /**
     * Where the LUKS header lies in the image file (the CRYPTO header extension: offset, then length, both u64),
     * present exactly when {@link #luksEncrypted}.
     */
    public Optional<CryptoHeaderArea> cryptoHeader() {
        return extension(HeaderExtension.FDE_POINTER)
                .map(e -> new CryptoHeaderArea(Bytes.getLong(e.data(), 0), Bytes.getLong(e.data(), 8)));
    }

    /** The LUKS header's clusters in the image file: {@code length} bytes from {@code offset}. */
    public record CryptoHeaderArea(long offset, long length) {
    }

    /** UTF-8 text of {@code b[off, off + len)} up to the first NUL byte: QEMU keeps file names as C strings. */
    static String cString(byte[] b, int off, int len) {
        int end = off;
        while (end < off + len && b[end] != 0) {
            end++;
        }
        return new String(b, off, end - off, StandardCharsets.UTF_8);
    }

    /** The image's feature-name table, or QEMU's defaults when it has none. */
    public List<Features.FeatureName> featureNames() {
        return extension(HeaderExtension.FEATURE_TABLE).map(e -> decodeFeatureTable(e.data()))
                .orElse(List.of(Features.QEMU_NAMES));
    }

    /** Returns a copy with other feature words, as written when the dirty or corrupt bit changes. */
    public Header withFeatures(long incompatible, long compatible, long autoclear) {
        return new Header(version, backingFileOffset, backingFileSize, clusterBits, size, cryptMethod, l1Size,
                l1TableOffset, refcountTableOffset, refcountTableClusters, nbSnapshots, snapshotsOffset, incompatible,
                compatible, autoclear, refcountOrder, headerLength, compressionType, extensions, backingFile);
    }

    /** Returns a copy with another virtual size. */
    public Header withSize(long newSize) {
        return new Header(version, backingFileOffset, backingFileSize, clusterBits, newSize, cryptMethod, l1Size,
                l1TableOffset, refcountTableOffset, refcountTableClusters, nbSnapshots, snapshotsOffset,
                incompatibleFeatures, compatibleFeatures, autoclearFeatures, refcountOrder, headerLength,
                compressionType, extensions, backingFile);
    }

    /** Returns a copy with refcounts of another width, in the reftable at {@code tableOffset}. */
    public Header withRefcounts(int order, long tableOffset, int tableClusters) {
        return new Header(version, backingFileOffset, backingFileSize, clusterBits, size, cryptMethod, l1Size,
                l1TableOffset, tableOffset, tableClusters, nbSnapshots, snapshotsOffset, incompatibleFeatures,
                compatibleFeatures, autoclearFeatures, order, headerLength, compressionType, extensions, backingFile);
    }

    /** Returns a copy with another active L1 table. */
    public Header withL1(int newL1Size, long newL1Offset) {
        return new Header(version, backingFileOffset, backingFileSize, clusterBits, size, cryptMethod, newL1Size,
                newL1Offset, refcountTableOffset, refcountTableClusters, nbSnapshots, snapshotsOffset,
                incompatibleFeatures, compatibleFeatures, autoclearFeatures, refcountOrder, headerLength,
                compressionType, extensions, backingFile);
    }

    /**
     * Returns a copy encrypted with LUKS (crypt_method 2) whose LUKS header lies in {@code area}, named by a CRYPTO
     * header extension (QEMU's qcow2_set_up_encryption, then qcow2_update_header).
     */
    public Header withLuksHeader(CryptoHeaderArea area) {
        byte[] pointer = new byte[16];
        Bytes.putLong(pointer, 0, area.offset());
        Bytes.putLong(pointer, 8, area.length());
        List<HeaderExtension> withPointer = new ArrayList<>(extensions.stream()
                .filter(e -> e.type() != HeaderExtension.FDE_POINTER).toList());
        withPointer.add(new HeaderExtension(HeaderExtension.FDE_POINTER, pointer));
        return withCryptMethod(2, withPointer);
    }

    /** Returns a copy encrypted with AES (crypt_method 1), which needs no header of its own. */
    public Header withAesEncryption() {
        return withCryptMethod(1, extensions);
    }

    private Header withCryptMethod(int method, List<HeaderExtension> newExtensions) {
        return new Header(version, backingFileOffset, backingFileSize, clusterBits, size, method, l1Size,
                l1TableOffset, refcountTableOffset, refcountTableClusters, nbSnapshots, snapshotsOffset,
                incompatibleFeatures, compatibleFeatures, autoclearFeatures, refcountOrder, headerLength,
                compressionType, newExtensions, backingFile);
    }

    /** Returns a copy naming another backing file (null: none), with {@code extensions} in place of these. */
    public Header withBackingFile(String name, List<HeaderExtension> newExtensions) {
        return new Header(version, 0, 0, clusterBits, size, cryptMethod, l1Size, l1TableOffset, refcountTableOffset,
                refcountTableClusters, nbSnapshots, snapshotsOffset, incompatibleFeatures, compatibleFeatures,
                autoclearFeatures, refcountOrder, headerLength, compressionType, newExtensions, name);
    }

    /** Returns a copy of another version, with that version's header length. */
    public Header withVersion(int newVersion) {
        return new Header(newVersion, backingFileOffset, backingFileSize, clusterBits, size, cryptMethod, l1Size,
                l1TableOffset, refcountTableOffset, refcountTableClusters, nbSnapshots, snapshotsOffset,
                incompatibleFeatures, compatibleFeatures, autoclearFeatures, refcountOrder,
                newVersion == 3 ? Limits.V3_HEADER_LENGTH : Limits.V2_HEADER_LENGTH, compressionType, extensions,
                backingFile);
    }

    /** Returns a copy pointing to another snapshot table. */
    public Header withSnapshots(int count, long offset) {
        return new Header(version, backingFileOffset, backingFileSize, clusterBits, size, cryptMethod, l1Size,
                l1TableOffset, refcountTableOffset, refcountTableClusters, count, offset, incompatibleFeatures,
                compatibleFeatures, autoclearFeatures, refcountOrder, headerLength, compressionType, extensions,
                backingFile);
    }

    /**
     * Reads the cluster size from the first bytes of a file (or all of them, when it is shorter than a header) after
     * checking magic, version and cluster_bits, so that the caller knows how much of cluster 0 to read.
     */
    public static int peekClusterBits(byte[] first) throws CorruptImageException, UnsupportedFeatureException {
        first = withZeroesAfterTheFile(first);
        if (HeaderField.MAGIC.getInt(first) != MAGIC) {
            throw new CorruptImageException("Image is not in qcow2 format"); // qcow2_do_open's words
        }
        int version = HeaderField.VERSION.getInt(first);
        if (version != 2 && version != 3) {
            throw new UnsupportedFeatureException("qcow2 version " + Integer.toUnsignedString(version),
                    "Unsupported qcow2 version " + Integer.toUnsignedString(version));
        }
        int clusterBits = HeaderField.CLUSTER_BITS.getInt(first);
        if (clusterBits < Limits.MIN_CLUSTER_BITS || clusterBits > Limits.MAX_CLUSTER_BITS) {
            throw new CorruptImageException("Unsupported cluster size: 2^" + Integer.toUnsignedString(clusterBits));
        }
        return clusterBits;
    }

    /**
     * {@code bytes} with zeroes after them to a version 3 header's length: a file that ends inside its header reads
     * zeroes after its end, as QEMU reads it (and then refuses what it finds, in its words: "Unsupported qcow2
     * version 0", "qcow2 header too short").
     */
    private static byte[] withZeroesAfterTheFile(byte[] bytes) {
        return bytes.length >= Limits.V3_HEADER_LENGTH ? bytes : Arrays.copyOf(bytes, Limits.V3_HEADER_LENGTH);
    }

    /**
     * Parses and validates the header. {@code cluster0} holds the first cluster of the file (or the whole file
     * when it is shorter); {@code fileLength} is the image file's length, against which every table is checked.
     */
    public static Header parse(byte[] cluster0, long fileLength) throws CorruptImageException,
            UnsupportedFeatureException {
        return parse(cluster0, fileLength, true);
    }

    /**
     * As {@link #parse}, but leaves the snapshot table pointer (nb_snapshots, snapshots_offset) unchecked, as
     * QEMU's open does for qemu-img check (BDRV_O_CHECK): the check validates and reads the table itself, so that
     * a damaged one is reported and repaired rather than refused. The count is then a u32 in an int. The refcount
     * and L1 tables may lie past the end of the file, as QEMU's open lets them (their sizes are capped all the
     * same): the check reads zeroes there and reports what they leave uncounted, and a repair rebuilds them.
     */
    public static Header parseForCheck(byte[] cluster0, long fileLength) throws CorruptImageException,
            UnsupportedFeatureException {
        return parse(cluster0, fileLength, false);
    }

    private static Header parse(byte[] cluster0, long fileLength, boolean forOpen)
            throws CorruptImageException, UnsupportedFeatureException {
        byte[] b = withZeroesAfterTheFile(cluster0);
        int clusterBits = peekClusterBits(b);
        long clusterSize = 1L << clusterBits;
        int version = HeaderField.VERSION.getInt(b);
        long backingFileOffset = HeaderField.BACKING_FILE_OFFSET.get(b);
        long backingFileSize = HeaderField.BACKING_FILE_SIZE.get(b);
        long size = HeaderField.SIZE.get(b);
        int cryptMethod = HeaderField.CRYPT_METHOD.getInt(b);
        long l1Size = HeaderField.L1_SIZE.get(b);
        long l1TableOffset = HeaderField.L1_TABLE_OFFSET.get(b);
        long refcountTableOffset = HeaderField.REFCOUNT_TABLE_OFFSET.get(b);
        long refcountTableClusters = HeaderField.REFCOUNT_TABLE_CLUSTERS.get(b);
        long nbSnapshots = HeaderField.NB_SNAPSHOTS.get(b);
        long snapshotsOffset = HeaderField.SNAPSHOTS_OFFSET.get(b);

        long incompatible = 0;
        long compatible = 0;
        long autoclear = 0;
        int refcountOrder = 4;
        long headerLength = Limits.V2_HEADER_LENGTH;
        int compressionType = 0;
        if (version == 3) {
            incompatible = HeaderField.INCOMPATIBLE_FEATURES.get(b);
            compatible = HeaderField.COMPATIBLE_FEATURES.get(b);
            autoclear = HeaderField.AUTOCLEAR_FEATURES.get(b);
            refcountOrder = HeaderField.REFCOUNT_ORDER.getInt(b);
            headerLength = HeaderField.HEADER_LENGTH.get(b);
            if (headerLength < Limits.V3_MIN_HEADER_LENGTH) {
                throw new CorruptImageException("qcow2 header too short");
            }
            if (headerLength > clusterSize) {
                throw new CorruptImageException("qcow2 header exceeds cluster size: header_length " + headerLength);
            }
            if (headerLength > b.length) {
                throw new CorruptImageException("qcow2 header extends past the end of the file");
            }
            HeaderField type = HeaderField.COMPRESSION_TYPE;
            if (headerLength >= type.offset() + type.width()) {
                compressionType = (int) type.get(b);
            }
        }
        if (backingFileOffset < 0 || backingFileOffset > clusterSize) {
            throw new CorruptImageException("Invalid backing file offset " + Long.toUnsignedString(backingFileOffset));
        }

        // Extensions lie between the header and the backing file name (or the end of cluster 0).
        List<HeaderExtension> extensions = new ArrayList<>();
        long extEnd = backingFileOffset != 0 ? backingFileOffset : clusterSize;
        readExtensions(b, headerLength, Math.min(extEnd, b.length), extEnd, extensions, cryptMethod, autoclear,
                clusterSize);
        List<Features.FeatureName> names = extensions.stream().filter(e -> e.type() == HeaderExtension.FEATURE_TABLE)
                .findFirst().map(e -> decodeFeatureTable(e.data())).orElse(List.of(Features.QEMU_NAMES));

        long unknown = incompatible & ~Features.INCOMPAT_KNOWN;
        if (unknown != 0) {
            String what = describeFeatures(names, Features.TYPE_INCOMPATIBLE, unknown);
            throw new UnsupportedFeatureException(what, "Unsupported qcow2 feature(s): " + what);
        }
        if (cryptMethod != 0) {
            if (cryptMethod != 1 && cryptMethod != 2) {
                String method = Integer.toUnsignedString(cryptMethod);
                throw new UnsupportedFeatureException("encryption method " + method,
                        "Unsupported encryption method: " + method);
            }
            if (cryptMethod == 2 && extensions.stream().noneMatch(e -> e.type() == HeaderExtension.FDE_POINTER)) {
                throw new CorruptImageException("Missing CRYPTO header for crypt method 2"); // QEMU's words
            }
        }
        if (refcountOrder < 0 || refcountOrder > Limits.MAX_REFCOUNT_ORDER) {
            throw new CorruptImageException(
                    "Reference count entry width too large; may not exceed 64 bits (refcount_order "
                            + Integer.toUnsignedString(refcountOrder) + ")");
        }
        validateCompressionType(compressionType, incompatible);
        if ((incompatible & Features.INCOMPAT_EXTL2) != 0 && clusterBits < Limits.MIN_EXTENDED_L2_CLUSTER_BITS) {
            throw new UnsupportedFeatureException("subcluster size", "Unsupported subcluster size: "
                    + (clusterSize / Limits.SUBCLUSTERS_PER_CLUSTER) + " (extended L2 needs clusters of at least "
                    + (1 << Limits.MIN_EXTENDED_L2_CLUSTER_BITS) + " bytes)");
        }
        if ((autoclear & Features.AUTOCLEAR_DATA_FILE_RAW) != 0 && (incompatible & Features.INCOMPAT_DATA_FILE) == 0) {
            throw new CorruptImageException("data-file-raw requires a data file");
        }

        // Refcount table (CVE-2014-0144: cap before anything is allocated from it).
        if (refcountTableClusters == 0) {
            throw new CorruptImageException("Image does not contain a reference count table");
        }
        if (refcountTableClusters > Limits.MAX_REFTABLE_BYTES / clusterSize) {
            throw new ImageTooLargeException("Reference count table too large: " + refcountTableClusters + " clusters");
        }
        long tablesEnd = forOpen ? fileLength : Long.MAX_VALUE; // see parseForCheck
        validateTable("Reference count table", refcountTableOffset, refcountTableClusters * clusterSize,
                clusterSize, tablesEnd);

        // Snapshot table: QEMU answers EINVAL here, and validates the offset even when there are no snapshots.
        if (forOpen) {
            if (nbSnapshots > Limits.MAX_SNAPSHOTS) {
                throw new CorruptImageException("Too many snapshots: " + nbSnapshots + " (at most "
                        + Limits.MAX_SNAPSHOTS + ")");
            }
            validateTable("Snapshot table", snapshotsOffset, nbSnapshots * SnapshotTable.FIXED_ENTRY_SIZE,
                    clusterSize, fileLength);
        }

        // Active L1 table (CVE-2014-0144).
        int l2Bits = clusterBits - ((incompatible & Features.INCOMPAT_EXTL2) != 0 ? 4 : 3);
        long neededL1 = Limits.sizeToL1(size, clusterBits, l2Bits);
        if (neededL1 < 0 || neededL1 > Integer.MAX_VALUE) {
            throw new ImageTooLargeException("Image is too big: virtual size " + Long.toUnsignedString(size));
        }
        if (l1Size > Limits.MAX_L1_BYTES / 8) {
            throw new ImageTooLargeException("Active L1 table too large: " + l1Size + " entries");
        }
        if (l1Size < neededL1) {
            throw new CorruptImageException("L1 table is too small: " + l1Size + " entries for a virtual size of "
                    + size + " bytes (needs " + neededL1 + ")");
        }
        validateTable("Active L1 table", l1TableOffset, l1Size * 8, clusterSize, tablesEnd);

        // Backing file name (CVE-2014-0144: bounded by 1023 and by cluster 0).
        String backingFile = null;
        if (backingFileOffset != 0) {
            if (backingFileSize > Limits.MAX_BACKING_NAME || backingFileSize > clusterSize - backingFileOffset) {
                throw new CorruptImageException("Backing file name too long: " + backingFileSize + " bytes");
            }
            if (backingFileOffset + backingFileSize > b.length) {
                throw new CorruptImageException("Backing file name extends past the end of the file");
            }
            // QEMU keeps the name as a C string, so it ends at the first NUL byte; an empty name means no backing
            // file (bdrv_open_backing_file skips it).
            String name = cString(b, (int) backingFileOffset, (int) backingFileSize);
            backingFile = name.isEmpty() ? null : name;
        }
        return new Header(version, backingFileOffset, (int) backingFileSize, clusterBits, size, cryptMethod,
                (int) l1Size, l1TableOffset, refcountTableOffset, (int) refcountTableClusters, (int) nbSnapshots,
                snapshotsOffset, incompatible, compatible, autoclear, refcountOrder, (int) headerLength,
                compressionType, extensions, backingFile);
    }

    /** QEMU's validate_compression_type: zlib with bit 3 clear, zstd with bit 3 set, nothing else. */
    private static void validateCompressionType(int type, long incompatible)
            throws CorruptImageException, UnsupportedFeatureException {
        boolean bit = (incompatible & Features.INCOMPAT_COMPRESSION) != 0;
        if (type != 0 && type != 1) {
            throw new UnsupportedFeatureException("compression type " + type,
                    "qcow2: unknown compression type: " + type);
        }
        if (type == 0 && bit) {
            throw new CorruptImageException(
                    "Compression type incompatible feature bit must not be set for the zlib compression type");
        }
        if (type != 0 && !bit) {
            throw new CorruptImageException(
                    "Compression type incompatible feature bit must be set for a compression type other than zlib");
        }
    }

    /**
     * QEMU's qcow2_validate_table (aligned offset, offset + size within INT64_MAX; checked even for an empty
     * table) plus two checks of ours for a non-empty table: it must not start at offset 0, where the header is,
     * and it must lie inside the file, so that its size is trusted before a buffer is allocated for it.
     */
    public static void validateTable(String what, long offset, long bytes, long clusterSize, long fileLength)
            throws CorruptImageException {
        if (offset < 0 || offset % clusterSize != 0 || offset > Long.MAX_VALUE - bytes) {
            throw new CorruptImageException(what + " offset invalid: 0x" + Long.toHexString(offset));
        }
        if (bytes == 0) {
            return;
        }
        if (offset == 0) {
            throw new CorruptImageException(what + " offset invalid: 0 (it would overlap the header)");
        }
        if (offset + bytes > fileLength) {
            throw new CorruptImageException(what + " at offset 0x" + Long.toHexString(offset) + " (" + bytes
                    + " bytes) extends past the end of the file (" + fileLength + " bytes)");
        }
    }

    private static void readExtensions(byte[] b, long start, long available, long end, List<HeaderExtension> out,
            int cryptMethod, long autoclear, long clusterSize) throws CorruptImageException {
        long offset = start;
        while (offset < end) {
            if (offset + 8 > available) {
                if (offset + 8 > end) {
                    throw new CorruptImageException("Header extension too large");
                }
                throw new CorruptImageException("Header extension area extends past the end of the file");
            }
            int type = Bytes.getInt(b, (int) offset);
            long len = Bytes.getUInt(b, (int) offset + 4);
            offset += 8;
            if (len > end - offset) {
                throw new CorruptImageException("Header extension too large");
            }
            if (type == HeaderExtension.END) {
                return;
            }
            if (offset + len > available) {
                throw new CorruptImageException("Header extension extends past the end of the file");
            }
            byte[] data = new byte[(int) len];
            System.arraycopy(b, (int) offset, data, 0, (int) len);
            validateExtension(type, data, cryptMethod, autoclear, clusterSize);
            out.add(new HeaderExtension(type, data));
            offset += Bytes.alignUp(len, 8);
        }
    }

    /** The checks of QEMU's qcow2_read_extensions, with its messages. */
    private static void validateExtension(int type, byte[] data, int cryptMethod, long autoclear, long clusterSize)
            throws CorruptImageException {
        switch (type) {
            case HeaderExtension.BACKING_FORMAT -> {
                if (data.length >= 16) {
                    throw new CorruptImageException("ERROR: ext_backing_format: len=" + data.length
                            + " too large (>=16)");
                }
            }
            case HeaderExtension.BITMAPS -> {
                if (data.length != 24) {
                    throw new CorruptImageException("bitmaps_ext: Invalid extension length " + data.length);
                }
                // Without the autoclear bit QEMU drops the extension unread: the bitmaps are inconsistent.
                if ((autoclear & Features.AUTOCLEAR_BITMAPS) != 0) {
                    validateBitmapsExtension(data, clusterSize);
                }
            }
            case HeaderExtension.FDE_POINTER -> {
                if (cryptMethod != 2) {
                    throw new CorruptImageException(
                            "CRYPTO header extension only expected with LUKS encryption method");
                }
                if (data.length != 16) {
                    throw new CorruptImageException("CRYPTO header extension size " + data.length
                            + ", but expected size 16");
                }
                long offset = Bytes.getLong(data, 0);
                if (offset % clusterSize != 0) {
                    throw new CorruptImageException("Encryption header offset '" + Long.toUnsignedString(offset)
                            + "' is not a multiple of cluster size '" + clusterSize + "'");
                }
            }
            default -> {
                // Kept verbatim.
            }
        }
    }

    /** Qcow2BitmapHeaderExt: nb_bitmaps u32, reserved32 u32, bitmap_directory_size u64, bitmap_directory_offset u64. */
    private static void validateBitmapsExtension(byte[] data, long clusterSize) throws CorruptImageException {
        long count = Bytes.getUInt(data, 0);
        long directorySize = Bytes.getLong(data, 8);
        long directoryOffset = Bytes.getLong(data, 16);
        if (Bytes.getInt(data, 4) != 0) {
            throw new CorruptImageException("bitmaps_ext: Reserved field is not zero");
        }
        if (count > Limits.MAX_BITMAPS) {
            throw new CorruptImageException("bitmaps_ext: Image has " + count
                    + " bitmaps, exceeding the QEMU supported maximum of " + Limits.MAX_BITMAPS);
        }
        if (count == 0) {
            throw new CorruptImageException("found bitmaps extension with zero bitmaps");
        }
        if ((directoryOffset & (clusterSize - 1)) != 0) {
            throw new CorruptImageException("bitmaps_ext: invalid bitmap directory offset");
        }
        if (Long.compareUnsigned(directorySize, Limits.MAX_BITMAP_DIRECTORY_BYTES) > 0) {
            throw new CorruptImageException("bitmaps_ext: bitmap directory size (" + Long.toUnsignedString(
                    directorySize) + ") exceeds the maximum supported size (" + Limits.MAX_BITMAP_DIRECTORY_BYTES
                    + ")");
        }
    }

    static List<Features.FeatureName> decodeFeatureTable(byte[] data) {
        List<Features.FeatureName> names = new ArrayList<>();
        for (int off = 0; off + 48 <= data.length; off += 48) {
            int len = 0;
            while (len < 46 && data[off + 2 + len] != 0) {
                len++;
            }
            names.add(new Features.FeatureName(data[off] & 0xff, data[off + 1] & 0xff,
                    new String(data, off + 2, len, StandardCharsets.UTF_8)));
        }
        return names;
    }

    public static byte[] encodeFeatureTable(Features.FeatureName[] names) {
        byte[] data = new byte[names.length * 48];
        for (int i = 0; i < names.length; i++) {
            data[i * 48] = (byte) names[i].type();
            data[i * 48 + 1] = (byte) names[i].bit();
            byte[] n = names[i].name().getBytes(StandardCharsets.UTF_8);
            System.arraycopy(n, 0, data, i * 48 + 2, Math.min(46, n.length));
        }
        return data;
    }

    /** Names the set bits of {@code bits} from the feature-name table, as QEMU's report_unsupported_feature does. */
    static String describeFeatures(List<Features.FeatureName> names, int type, long bits) {
        List<String> parts = new ArrayList<>();
        for (int bit = 0; bit < 64; bit++) {
            if ((bits & (1L << bit)) == 0) {
                continue;
            }
            int b = bit;
            parts.add(names.stream().filter(n -> n.type() == type && n.bit() == b).map(Features.FeatureName::name)
                    .findFirst().orElse("Unknown incompatible feature: " + Long.toHexString(1L << bit)));
        }
        return String.join(", ", parts);
    }

    /**
     * Encodes cluster 0: header fields, extensions (in this record's order, unknown ones verbatim), end marker
     * and backing file name. The backing name is placed right after the extensions and {@code backingFileOffset}
     * is recomputed, as QEMU's qcow2_update_header does.
     *
     * @throws CorruptImageException if it does not fit in one cluster
     */
    public byte[] encode() throws CorruptImageException {
        int len = version == 3 ? headerLength : Limits.V2_HEADER_LENGTH;
        int extBytes = 8; // end marker
        for (HeaderExtension e : extensions) {
            extBytes += e.encodedLength();
        }
        byte[] name = backingFile == null ? new byte[0] : backingFile.getBytes(StandardCharsets.UTF_8);
        long total = len + extBytes + name.length;
        if (total > clusterSize() || name.length > Limits.MAX_BACKING_NAME) {
            throw new CorruptImageException("Header, extensions and backing file name do not fit in one cluster ("
                    + total + " > " + clusterSize() + " bytes)");
        }
        byte[] b = new byte[(int) total];
        HeaderField.MAGIC.put(b, MAGIC);
        HeaderField.VERSION.put(b, version);
        long nameOffset = name.length == 0 ? 0 : len + extBytes;
        HeaderField.BACKING_FILE_OFFSET.put(b, nameOffset);
        HeaderField.BACKING_FILE_SIZE.put(b, name.length);
        HeaderField.CLUSTER_BITS.put(b, clusterBits);
        HeaderField.SIZE.put(b, size);
        HeaderField.CRYPT_METHOD.put(b, cryptMethod);
        HeaderField.L1_SIZE.put(b, l1Size);
        HeaderField.L1_TABLE_OFFSET.put(b, l1TableOffset);
        HeaderField.REFCOUNT_TABLE_OFFSET.put(b, refcountTableOffset);
        HeaderField.REFCOUNT_TABLE_CLUSTERS.put(b, refcountTableClusters);
        HeaderField.NB_SNAPSHOTS.put(b, nbSnapshots);
        HeaderField.SNAPSHOTS_OFFSET.put(b, snapshotsOffset);
        if (version == 3) {
            HeaderField.INCOMPATIBLE_FEATURES.put(b, incompatibleFeatures);
            HeaderField.COMPATIBLE_FEATURES.put(b, compatibleFeatures);
            HeaderField.AUTOCLEAR_FEATURES.put(b, autoclearFeatures);
            HeaderField.REFCOUNT_ORDER.put(b, refcountOrder);
            HeaderField.HEADER_LENGTH.put(b, headerLength);
            HeaderField type = HeaderField.COMPRESSION_TYPE;
            if (headerLength >= type.offset() + type.width()) {
                type.put(b, compressionType);
            }
        }
        int off = len;
        for (HeaderExtension e : extensions) {
            byte[] d = e.data();
            Bytes.putInt(b, off, e.type());
            Bytes.putInt(b, off + 4, d.length);
            System.arraycopy(d, 0, b, off + 8, d.length);
            off += e.encodedLength();
        }
        // The end marker's eight bytes are already zero.
        System.arraycopy(name, 0, b, (int) (len + extBytes), name.length);
        return b;
    }

    /** The header as {@link #encode()} would re-read it: backing file offset and size recomputed. */
    public Header normalized() throws CorruptImageException {
        byte[] b = encode();
        return new Header(version, HeaderField.BACKING_FILE_OFFSET.get(b), HeaderField.BACKING_FILE_SIZE.getInt(b),
                clusterBits, size, cryptMethod, l1Size, l1TableOffset, refcountTableOffset, refcountTableClusters,
                nbSnapshots, snapshotsOffset, incompatibleFeatures, compatibleFeatures, autoclearFeatures,
                refcountOrder, headerLength, compressionType, extensions, backingFile);
    }
}
