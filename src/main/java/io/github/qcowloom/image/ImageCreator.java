package io.github.qcowloom.image;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLockedException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.Preallocation;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.crypto.LuksFormat;
import io.github.qcowloom.crypto.LuksOptions;
import io.github.qcowloom.format.Bytes;
import io.github.qcowloom.format.Features;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.format.HeaderExtension;
import io.github.qcowloom.format.L1Entry;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.format.Limits;
import io.github.qcowloom.format.RefcountCodec;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Creates empty qcow2 images as qemu-img create does: same option checks and messages, same table order, and
 * every image passes qemu-img check with nothing to report.
 */
public final class ImageCreator {
    private ImageCreator() {
    }

    /** Creates (or truncates) the image at {@code path}, and its data file if the options name one. */
    public static void create(Path path, CreateOptions options) throws IOException {
        try {
            createLocked(path, options);
        } catch (ImageLockedException e) {
            throw e.withContext(path + ": "); // qemu-img create's words
        }
    }

    /**
     * Creates the image as {@link #create(Path, CreateOptions)} does, encrypted with LUKS ({@code luks}) under
     * {@code passphrase}, as qemu-img create's {@code encrypt.format=luks} makes it ({@link LuksSetUp}). A failure
     * after the image was made may leave it unencrypted: the command line builds it under a temporary name.
     */
    public static void create(Path path, CreateOptions options, LuksOptions luks, byte[] passphrase)
            throws IOException {
        if (options.dataFile() != null) {
            throw ImageEncryption.dataFileRefusal();
        }
        // The LUKS header first: its refusals (algorithms not done) come before any file is made.
        byte[] headerArea = LuksFormat.create(luks, passphrase, new SecureRandom()).headerArea();
        create(path, options);
        LuksSetUp.run(path, headerArea);
    }

    /**
     * Creates the image as {@link #create(Path, CreateOptions)} does, encrypted with the AES of images before LUKS,
     * as qemu-img create's {@code encrypt.format=aes} makes it: the header says crypt_method 1, and that is all (the
     * passphrase is the key, and nothing in the image checks it). A failure after the image was made may leave it
     * unencrypted: the command line builds it under a temporary name.
     */
    public static void createAes(Path path, CreateOptions options) throws IOException {
        if (options.dataFile() != null) {
            throw ImageEncryption.dataFileRefusal();
        }
        create(path, options);
        HeaderRewrite.rewrite(path, ImageLocking.DEFAULT, Header::withAesEncryption);
    }

    private static void createLocked(Path path, CreateOptions options) throws IOException {
        CreateOptions o = validate(options);
        CreateLayout layout = layout(o);
        if (o.dataFile() != null) {
            Path dataPath = ReferencedFiles.resolve(path.toAbsolutePath().getParent(), o.dataFile(), "data file");
            // A sparse file of (at least) the virtual size, raw or not, as qemu-img makes it.
            // AUTO, not FileChannel by name: preallocation=falloc may then reserve space with fallocate.
            try (Storage data = FileStorage.create(dataPath, false, StorageBackend.AUTO)) {
                data.setLength(layout.dataFileLength());
                allocateData(data, o, layout);
                HostSpace.allocateFirstBlock(data, layout.dataFileLength());
                data.flush();
            }
        }
        try (Storage file = FileStorage.create(path, false, StorageBackend.AUTO)) {
            write(file, o, layout);
            if (o.dataFile() == null) {
                allocateData(file, o, layout);
            }
            file.flush();
        }
    }

    /**
     * preallocation=falloc or full, after the metadata is in place: the data's host space in {@code target} reserved
     * (fallocate) or written with zeroes, whole clusters, as qemu-img's truncate of the new image reserves it: with a
     * data file, that file from 0 to its length (QEMU forwards the preallocation to it); else the image file's runs
     * of data clusters.
     */
    private static void allocateData(Storage target, CreateOptions o, CreateLayout layout) throws IOException {
        Preallocation mode = Preallocation.named(o.preallocation()).orElseThrow();
        if (mode == Preallocation.OFF || mode == Preallocation.METADATA) {
            return; // the clusters are placed by the L2 tables alone
        }
        if (o.dataFile() != null) {
            HostSpace.prepare(target, mode, 0, layout.dataFileLength(), true);
            return;
        }
        long cs = layout.clusterSize();
        long guestClusters = (o.size() + cs - 1) / cs;
        // Each L2 table is followed by the clusters it maps: one run per table.
        for (long first = 0; first < guestClusters; first += layout.l2Entries()) {
            long last = Math.min(guestClusters, first + layout.l2Entries()) - 1;
            long from = layout.dataOffset(first);
            HostSpace.prepare(target, mode, from, layout.dataOffset(last) + cs - from, true); // holes
        }
    }

    private static CreateLayout layout(CreateOptions o) throws ImageException {
        int clusterBits = Integer.numberOfTrailingZeros(o.clusterSize());
        int l2Bits = clusterBits - (o.extendedL2() ? 4 : 3);
        int refcountOrder = Integer.numberOfTrailingZeros(o.refcountBits());
        // QEMU's metadata preallocation rounds the disk's end up to what one L2 entry's bitmap bit (or the entry)
        // maps; falloc and full reserve whole clusters.
        Preallocation mode = Preallocation.named(o.preallocation()).orElseThrow();
        long unit = mode == Preallocation.OFF ? 0
                : mode == Preallocation.METADATA && o.extendedL2() ? o.clusterSize() / Limits.SUBCLUSTERS_PER_CLUSTER
                : o.clusterSize();
        return CreateLayout.compute(o.size(), clusterBits, l2Bits, refcountOrder, unit, o.dataFile() == null);
    }

    /** Checks the options as QEMU's qcow2_co_create does and returns them with the size rounded up to 512. */
    public static CreateOptions validate(CreateOptions o) throws ImageException {
        int cs = o.clusterSize();
        if (Integer.bitCount(cs) != 1 || cs < (1 << Limits.MIN_CLUSTER_BITS) || cs > (1 << Limits.MAX_CLUSTER_BITS)) {
            throw new ImageException("Cluster size must be a power of two between 512 and 2048k");
        }
        if (o.version() != 2 && o.version() != 3) {
            throw new UnsupportedFeatureException("qcow2 version " + o.version(),
                    "Invalid compatibility level: version " + o.version());
        }
        if (Integer.bitCount(o.refcountBits()) != 1 || o.refcountBits() > 64) {
            throw new ImageException("Refcount width must be a power of two and may not exceed 64 bits");
        }
        boolean v2 = o.version() == 2;
        if (v2 && o.refcountBits() != 16) {
            throw new ImageException("Different refcount widths than 16 bits require compatibility level 1.1 or "
                    + "above (use version=v3 or greater)");
        }
        if (v2 && o.lazyRefcounts()) {
            throw new ImageException("Lazy refcounts only supported with compatibility level 1.1 and above "
                    + "(use version=v3 or greater)");
        }
        if (v2 && o.extendedL2()) {
            throw new ImageException("Extended L2 entries are only supported with compatibility level 1.1 and "
                    + "above (use version=v3 or greater)");
        }
        if (o.extendedL2() && cs < (1 << Limits.MIN_EXTENDED_L2_CLUSTER_BITS)) {
            throw new ImageException("Extended L2 entries are only supported with cluster sizes of at least "
                    + (1 << Limits.MIN_EXTENDED_L2_CLUSTER_BITS) + " bytes");
        }
        if (!"zlib".equals(o.compressionType()) && !"zstd".equals(o.compressionType())) {
            throw new UnsupportedFeatureException("compression type " + o.compressionType(),
                    "Parameter 'compression-type' does not accept value '" + o.compressionType() + "'"); // QEMU's
        }
        if (v2 && !"zlib".equals(o.compressionType())) {
            throw new ImageException("Non-zlib compression type is only supported with compatibility level 1.1 "
                    + "and above (use version=v3 or greater)");
        }
        if (v2 && o.dataFile() != null) {
            throw new ImageException("External data files are only supported with compatibility level 1.1 and "
                    + "above (use version=v3 or greater)");
        }
        if (o.dataFileRaw() && o.dataFile() == null) {
            throw new ImageException("data-file-raw requires data-file");
        }
        if (o.backingFormat() != null && o.backingFile() == null) {
            throw new ImageException("Backing format cannot be used without backing file");
        }
        if (o.dataFile() != null && o.backingFile() != null && o.dataFileRaw()) {
            throw new ImageException("Backing file and data-file-raw cannot be used at the same time");
        }
        String prealloc = o.preallocation() == null ? "off" : o.preallocation();
        if (Preallocation.named(prealloc).isEmpty()) {
            throw new ImageException("Parameter 'preallocation' does not accept value '" + prealloc + "'"); // QEMU's
        }
        if (o.dataFileRaw() && prealloc.equals("off")) {
            // QEMU: a raw data file must be mapped one to one, so metadata preallocation is implied.
            prealloc = "metadata";
        }
        if (o.backingFile() != null && !prealloc.equals("off") && !o.extendedL2()) {
            throw new ImageException("Backing file and preallocation can only be used at the same time if "
                    + "extended_l2 is on");
        }
        if (o.size() < 0) {
            throw new ImageException("Image size must be a non-negative number");
        }
        return o.withSize(Bytes.alignUp(o.size(), 512)).withPreallocation(prealloc);
    }

    private static void write(Storage file, CreateOptions o, CreateLayout layout) throws IOException {
        int clusterBits = Integer.numberOfTrailingZeros(o.clusterSize());
        int refcountOrder = Integer.numberOfTrailingZeros(o.refcountBits());
        Header header = header(o, clusterBits, refcountOrder, layout);
        file.setLength(0);
        // The whole first cluster, as qemu-img writes it: the file then takes the host space qemu-img's takes (info's
        // disk size), on which QEMU's guess that an image was preallocated (its block status) also depends.
        byte[] encoded = header.encode();
        writeAt(file, 0, Arrays.copyOf(encoded, Math.max(encoded.length, o.clusterSize())));
        writeRefcountTables(file, layout, refcountOrder);

        // L1 (its entries only, as QEMU writes it), and with preallocation the L2 tables mapping every guest cluster.
        byte[] l1 = new byte[(int) (layout.l1Entries() * 8)];
        for (long t = 0; t < layout.l2Tables(); t++) {
            Bytes.putLong(l1, (int) (t * 8), L1Entry.of(layout.l2Offset(t), true));
        }
        if (l1.length > 0) {
            writeAt(file, layout.l1Offset(), l1);
        }
        writePreallocatedL2(file, o, layout);
        file.setLength(layout.fileLength());
    }

    private static Header header(CreateOptions o, int clusterBits, int refcountOrder, CreateLayout layout) {
        long incompatible = 0;
        long autoclear = 0;
        int compression = "zstd".equals(o.compressionType()) ? 1 : 0;
        if (compression != 0) {
            incompatible |= Features.INCOMPAT_COMPRESSION;
        }
        if (o.extendedL2()) {
            incompatible |= Features.INCOMPAT_EXTL2;
        }
        if (o.dataFile() != null) {
            incompatible |= Features.INCOMPAT_DATA_FILE;
        }
        if (o.dataFileRaw()) {
            autoclear |= Features.AUTOCLEAR_DATA_FILE_RAW;
        }
        // Extensions in the order QEMU's qcow2_update_header writes them.
        List<HeaderExtension> ext = new ArrayList<>();
        if (o.backingFormat() != null) {
            ext.add(new HeaderExtension(HeaderExtension.BACKING_FORMAT,
                    o.backingFormat().getBytes(StandardCharsets.UTF_8)));
        }
        if (o.dataFile() != null) {
            ext.add(new HeaderExtension(HeaderExtension.DATA_FILE, o.dataFile().getBytes(StandardCharsets.UTF_8)));
        }
        int headerLength = o.version() == 3 ? Limits.V3_HEADER_LENGTH : Limits.V2_HEADER_LENGTH;
        long l1Offset = layout.l1Entries() == 0 ? 0 : layout.l1Offset();
        return HeaderRewrite.inQemuLayout(new Header(o.version(), 0, 0, clusterBits, o.size(), 0,
                (int) layout.l1Entries(), l1Offset, layout.reftableOffset(), (int) layout.reftableClusters(), 0, 0,
                incompatible, o.lazyRefcounts() ? Features.COMPAT_LAZY_REFCOUNTS : 0, autoclear, refcountOrder,
                headerLength, compression, ext, o.backingFile()));
    }

    /** Reftable pointing to consecutive refblocks, every used cluster with refcount 1. */
    private static void writeRefcountTables(Storage file, CreateLayout layout, int refcountOrder)
            throws IOException {
        long cs = layout.clusterSize();
        byte[] reftable = new byte[(int) (layout.reftableClusters() * cs)];
        for (long i = 0; i < layout.refblocks(); i++) {
            Bytes.putLong(reftable, (int) (i * 8), layout.refblocksOffset() + i * cs);
        }
        writeAt(file, layout.reftableOffset(), reftable);
        RefcountCodec codec = new RefcountCodec(refcountOrder);
        long perBlock = codec.entriesPerBlock(cs);
        long total = layout.totalClusters();
        for (long i = 0; i < layout.refblocks(); i++) {
            byte[] block = new byte[(int) cs];
            long first = i * perBlock;
            for (long c = first; c < Math.min(total, first + perBlock); c++) {
                codec.set(block, (int) (c - first), 1);
            }
            writeAt(file, layout.refblocksOffset() + i * cs, block);
        }
    }

    /**
     * L2 tables whose entries map guest cluster i to consecutive host clusters, COPIED, as QEMU's metadata
     * preallocation leaves them; with a data file, guest offset equals host offset in the data file. With extended
     * L2 the subcluster bitmaps stay 0, as qemu-img 7.2 leaves them: the clusters are placed, but no subcluster is
     * allocated (they read as zeroes, or from the backing file, until written).
     */
    private static void writePreallocatedL2(Storage file, CreateOptions o, CreateLayout layout) throws IOException {
        long cs = layout.clusterSize();
        int entrySize = o.extendedL2() ? 16 : 8;
        long guestClusters = (o.size() + cs - 1) / cs;
        long perTable = layout.l2Entries();
        boolean hasDataFile = o.dataFile() != null;
        for (long t = 0; t < layout.l2Tables(); t++) {
            byte[] table = new byte[(int) cs];
            for (long i = 0; i < perTable; i++) {
                long cluster = t * perTable + i;
                if (cluster >= guestClusters) {
                    break;
                }
                long host = hasDataFile ? cluster * cs : layout.dataOffset(cluster);
                Bytes.putLong(table, (int) (i * entrySize), L2Entry.owned(host));
            }
            writeAt(file, layout.l2Offset(t), table);
        }
    }

    private static void writeAt(Storage file, long offset, byte[] data) throws IOException {
        file.write(ByteBuffer.wrap(data), offset);
    }
}
