package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.format.BitmapDirectory;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.crypto.LuksFormat;
import io.github.qcowloom.image.Qcow2Measure;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code measure [--output=human|json] [-O FMT] [-o OPTIONS] [--size N | [-f FMT] [-l SNAPSHOT] [-U] FILE]}, as
 * qemu-img measure: the file size a new image of the output format needs, for a disk of {@code --size} or holding the
 * data of FILE, and fully allocated. For qcow2 QEMU's qcow2_measure: the metadata of a fully allocated disk, plus the
 * clusters FILE's block status shows data in (through its backing chain); all of them with a backing file in
 * {@code -o} or with falloc/full preallocation. For raw the disk's size both times. With {@code -l}, FILE's internal
 * snapshot in place of its active image ({@link SnapshotParam}).
 */
@Command(description = "Tell how large a new image needs to be, as qemu-img measure does.")
final class MeasureCommand implements Callable<Integer> {
    /** The options qemu-img takes with -o for qcow2 output (the driver's create options and file-posix's). */
    private static final Set<String> QCOW2_OPTIONS = Set.of("size", "compat", "backing_file", "backing_fmt",
            "data_file", "data_file_raw", "encryption", "encrypt.format", "encrypt.key-secret", "encrypt.cipher-alg",
            "encrypt.cipher-mode", "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg", "encrypt.hash-alg",
            "encrypt.iter-time", "cluster_size", "extended_l2", "preallocation", "lazy_refcounts", "refcount_bits",
            "compression_type", "nocow", "extent_size_hint");
    private static final Set<String> RAW_OPTIONS = Set.of("size", "preallocation", "nocow", "extent_size_hint");

    @Spec
    CommandSpec spec;

    @Option(names = "--output", paramLabel = "FMT", description = "human (default) or json.")
    String output = "human";

    @Option(names = "-O", paramLabel = "FMT", description = "The new image's format: raw (default) or qcow2.")
    String outputFormat = "raw";

    @Option(names = "-o", paramLabel = "OPTIONS", description = "The new image's options, as for create.")
    List<String> options = new ArrayList<>();

    @Option(names = "--size", paramLabel = "N", description = "The disk's size (k, M, G… suffixes), without FILE.")
    String size;

    @Option(names = "-f", paramLabel = "FMT", description = "FILE's format (probed when absent).")
    String format;

    @Option(names = "-l", paramLabel = "SNAPSHOT", description = "Measure internal snapshot SNAPSHOT of FILE (an id"
            + " or a name, or snapshot.id=ID,snapshot.name=NAME) in place of its active image.")
    String snapshot;

    @Option(names = {"-U", "--force-share"}, description = "Share FILE with writers (qemu-img's -U).")
    boolean forceShare;

    @Option(names = "--image-opts", description = ImageOpts.HELP)
    boolean imageOpts;

    @Mixin
    QemuObjects objects = new QemuObjects();

    @Parameters(arity = "0..*", paramLabel = "FILE")
    List<String> filenames = List.of();

    private String filename;
    /** The source's persistent bitmaps, read once, as the open reads them (empty but for a qcow2 source). */
    private List<BitmapDirectory.Entry> sourceBitmaps = List.of();

    /** What qemu-img measure prints; {@code bitmaps} null where it prints no bitmaps line. */
    private record Measured(long required, long fullyAllocated, Long bitmaps) {
    }

    @Override
    public Integer call() throws Exception {
        boolean json = Json.requested(output);
        // img_measure's order: what its option loop refuses, then the file names, then the size.
        CreateOptionsParser.parse(options); // an invalid option list
        SnapshotParam snapshotParam = snapshot == null ? null : SnapshotParam.parse(snapshot, '\'');
        long givenSize = size == null ? -1 : Sizes.cvtnum("image size", size);
        if (filenames.size() > 1) {
            throw new IllegalArgumentException("At most one filename argument is allowed.");
        }
        filename = filenames.isEmpty() ? null : filenames.get(0);
        if (filename == null && (imageOpts || format != null || snapshot != null)) {
            throw new IllegalArgumentException("--image-opts, -f, and -l require a filename argument.");
        }
        if (filename != null && givenSize >= 0) {
            throw new IllegalArgumentException("--size N cannot be used together with a filename.");
        }
        if (filename == null && givenSize < 0) {
            throw new IllegalArgumentException("Either --size N or one filename must be specified.");
        }
        Measured sizes;
        if (filename == null) {
            sizes = measure(null, givenSize);
        } else {
            try (BlockDevice source = open()) {
                if (source instanceof Qcow2Image img) {
                    // qemu-img's open loads them, and refuses a directory QEMU cannot load
                    sourceBitmaps = ImageInfo.persistentBitmaps(img, filename);
                }
                if (snapshotParam != null) {
                    snapshotParam.load(source);
                }
                sizes = measure(source, givenSize);
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            Map<String, Object> m = new LinkedHashMap<>();
            if (sizes.bitmaps() != null) {
                m.put("bitmaps", sizes.bitmaps());
            }
            m.put("required", new java.math.BigInteger(Long.toUnsignedString(sizes.required())));
            m.put("fully-allocated", new java.math.BigInteger(Long.toUnsignedString(sizes.fullyAllocated())));
            out.println(Json.write(m));
        } else {
            out.println("required size: " + Long.toUnsignedString(sizes.required()));
            out.println("fully allocated size: " + Long.toUnsignedString(sizes.fullyAllocated()));
            if (sizes.bitmaps() != null) {
                out.println("bitmaps size: " + sizes.bitmaps());
            }
        }
        return 0;
    }

    private BlockDevice open() throws IOException {
        ImageOpts image = ImageOpts.of(imageOpts, filename, format, objects);
        return image.open(image.format(), image.apply(OpenOptions.readOnlyDefaults()
                .withLocking(forceShare ? ImageLocking.FORCE_SHARE : ImageLocking.DEFAULT)));
    }

    private Measured measure(BlockDevice source, long givenSize) throws IOException {
        boolean qcow2 = switch (outputFormat) {
            case "qcow2" -> true;
            case "raw" -> false;
            default -> throw new UnsupportedFeatureException("measure -O " + outputFormat,
                    ImageFormat.QEMU_OTHER_FORMATS.contains(outputFormat)
                            ? "Measuring for format '" + outputFormat + "' is not supported (raw and qcow2 are)"
                            : "Unknown file format '" + outputFormat + "'");
        };
        Map<String, String> opts = parseOptions(qcow2 ? QCOW2_OPTIONS : RAW_OPTIONS);
        long optionSize = opts.containsKey("size") ? Sizes.option("size", opts.get("size")) : 0;
        long sizeAsked = givenSize >= 0 ? givenSize : optionSize; // --size wins, as qemu-img sets it last
        if (!qcow2) {
            long required = source != null ? source.size() : roundUpUnsigned(sizeAsked, 512);
            return new Measured(required, required, null); // unallocated sectors count in a raw file
        }
        return measureQcow2(opts, source, sizeAsked);
    }

    /** QEMU's qcow2_measure, its options read in its order and refused in its words. */
    private Measured measureQcow2(Map<String, String> opts, BlockDevice source, long sizeAsked)
            throws IOException {
        boolean extendedL2 = CreateOptionsParser.bool(opts.getOrDefault("extended_l2", "off"));
        long clusterSize = opts.containsKey("cluster_size") ? Sizes.option("cluster_size", opts.get("cluster_size"))
                : 65536;
        if (Long.bitCount(clusterSize) != 1 || clusterSize < 512 || clusterSize > (2 << 20)) {
            throw new ImageException("Cluster size must be a power of two between 512 and 2048k");
        }
        if (extendedL2 && clusterSize < 512 * 32) {
            throw new ImageException("Extended L2 entries are only supported with cluster sizes of at least 16384 "
                    + "bytes");
        }
        String compat = opts.getOrDefault("compat", "1.1");
        int version = switch (compat) {
            case "0.10" -> 2;
            case "1.1" -> 3;
            default -> throw new ImageException("Invalid compatibility level: '" + compat + "'");
        };
        long refcountBits = opts.containsKey("refcount_bits") ? QemuNumbers.parse(opts.get("refcount_bits")) : 16;
        if (Long.compareUnsigned(refcountBits, 64) > 0 || Long.bitCount(refcountBits) != 1) {
            throw new ImageException("Refcount width must be a power of two and may not exceed 64 bits");
        }
        if (version < 3 && refcountBits != 16) {
            throw new ImageException("Different refcount widths than 16 bits require compatibility level 1.1 or "
                    + "above (use compat=1.1 or greater)");
        }
        String prealloc = opts.getOrDefault("preallocation", "off");
        if (!Set.of("off", "metadata", "falloc", "full").contains(prealloc)) {
            throw new ImageException("invalid parameter value: " + prealloc);
        }
        long luksPayload = 0;
        if ("luks".equals(opts.get("encrypt.format"))) { // the one encryption that changes the sizes
            // Its header and key material, in whole clusters (QEMU's luks_payload_size): checked as create checks
            // them, the secret included.
            // Without the alias `encryption`, which only create's option renaming refuses beside encrypt.format.
            Map<String, String> luks = new LinkedHashMap<>(opts);
            luks.remove("encryption");
            EncryptionOptions options = EncryptionOptions.of(luks, objects);
            Arrays.fill(options.passphrase(), (byte) 0);
            long header = LuksFormat.headerLength(options.luks());
            luksPayload = roundUpUnsigned(header, clusterSize);
        }
        boolean backing = opts.containsKey("backing_file");
        // QEMU checks the size asked (--size or -o size, else 0) and takes the source's after, unchecked.
        long size = roundUpUnsigned(sizeAsked, clusterSize);
        if (!Qcow2Measure.fits(size, clusterSize, extendedL2)) {
            throw new ImageException("The image size is too large (try using a larger cluster size)");
        }
        if (source != null) {
            size = roundUpUnsigned(source.size(), clusterSize);
        }
        long required = 0;
        if (source != null) {
            // Without a backing file in the new image, only the clusters holding data need a place; with one, QEMU
            // cannot tell what the backing file shares, and counts them all.
            required = backing ? size : dataBytes(source, clusterSize);
        }
        if (prealloc.equals("falloc") || prealloc.equals("full")) {
            required = size;
        }
        int refcountOrder = Long.numberOfTrailingZeros(refcountBits);
        long full = Qcow2Measure.fullyAllocated(size, clusterSize, refcountOrder, extendedL2);
        return new Measured(full + luksPayload - size + required, full + luksPayload,
                version >= 3 ? bitmapsBytes(source, clusterSize) : null);
    }

    /**
     * QEMU's count of the clusters that hold data: where block status (through the chain) says data, up to the end
     * of that run's last cluster, the next query starting there.
     */
    private static long dataBytes(BlockDevice source, long clusterSize) throws IOException {
        long end = source.size();
        long required = 0;
        long pnum;
        for (long offset = 0; offset < end; offset += pnum) {
            BlockStatus s = source.blockStatus(offset, end - offset);
            pnum = s.length();
            if (!s.zero() && s.data() && s.present()) {
                pnum = roundUpUnsigned(offset + pnum, clusterSize) - offset;
                required += offset % clusterSize + pnum;
            }
        }
        return required;
    }

    /**
     * The bitmaps line: QEMU prints it when the source is a qcow2 v3 image (which can hold persistent dirty
     * bitmaps), with what its bitmaps would take in the new image of {@code clusterSize}: each bitmap's data as if
     * every cluster of it were allocated, its table, and the directory (qcow2_get_persistent_dirty_bitmap_size).
     */
    private Long bitmapsBytes(BlockDevice source, long clusterSize) {
        if (!(source instanceof Qcow2Image img) || img.header().version() < 3) {
            return null;
        }
        long bytes = 0;
        long directory = 0;
        for (BitmapDirectory.Entry bitmap : sourceBitmaps) {
            long bits = Math.ceilDiv(img.size(), 1L << bitmap.granularityBits());
            long clusters = Math.ceilDiv(Math.ceilDiv(bits, 8), clusterSize);
            bytes += clusters * clusterSize + Math.ceilDiv(clusters * 8, clusterSize) * clusterSize;
            directory += (BitmapDirectory.ENTRY_FIXED_BYTES + bitmap.nameSize() + 7) & -8; // calc_dir_entry_size
        }
        return bytes + Math.ceilDiv(directory, clusterSize) * clusterSize;
    }

    /**
     * The -o options as qemu-img's QemuOpts parse takes them against the output format's create options: unknown
     * names and values of the wrong type are refused there, each followed by its "Invalid options" line.
     */
    private Map<String, String> parseOptions(Set<String> known) throws ImageException {
        Map<String, String> opts = CreateOptionsParser.parse(options);
        for (Map.Entry<String, String> e : opts.entrySet()) {
            String key = e.getKey();
            String v = e.getValue();
            String refused = null;
            if (!known.contains(key)) {
                refused = "Invalid parameter '" + key + "'";
            } else if (Set.of("extended_l2", "lazy_refcounts", "data_file_raw", "nocow", "encryption").contains(key)
                    && CreateOptionsParser.bool(v) == null) {
                refused = "Parameter '" + key + "' expects 'on' or 'off'";
            } else if (key.equals("refcount_bits")) {
                try {
                    QemuNumbers.parse(v);
                } catch (NumberFormatException ex) {
                    refused = "Parameter '" + key + "' expects a number";
                } catch (ArithmeticException ex) {
                    refused = "Value '" + v + "' is too large for parameter '" + key + "'";
                }
            } else if (Set.of("size", "cluster_size", "extent_size_hint").contains(key)) {
                try {
                    Sizes.option(key, v);
                } catch (IllegalArgumentException ex) {
                    refused = ex.getMessage();
                }
            }
            if (refused != null) {
                throw new ImageException(refused + "\nqcow2-loom: Invalid options for file format '" + outputFormat
                        + "'");
            }
        }
        return opts;
    }

    /** {@code v} rounded up to {@code unit}, both read as unsigned (sizes up to 2^64 - 1, as QEMU's uint64_t). */
    private static long roundUpUnsigned(long v, long unit) {
        return v == 0 ? 0 : Long.divideUnsigned(v - 1, unit) * unit + unit;
    }
}
