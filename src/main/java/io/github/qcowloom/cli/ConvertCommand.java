package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenFailures;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.image.HostSpace;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.image.ZeroData;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.LongConsumer;
import me.tongfei.progressbar.ProgressBar;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code convert [-f fmt] [-l snapshot] -O raw|qcow2 [-c] [-o options] [-B backing [-F fmt]] [-m N] [-W] SRC DST}:
 * copies the source (or its internal snapshot, {@link SnapshotParam}) through {@link ChunkCopy}'s pipeline (block
 * status first, N parallel requests, writes in guest order unless -W) and writes a raw file or a new qcow2 image in
 * which all-zero chunks (and, over a backing file, chunks equal to it) stay unallocated; with {@code -c} the qcow2
 * image's clusters are compressed. The target is built beside its path and renamed over it when complete
 * ({@link AtomicTarget}).
 */
final class ConvertCommand implements Callable<Integer>, QemuObjects.Holder {
    /** Zero blocks of this size in the data stay holes in a raw target: qemu-img convert's default -S 4k. */
    private static final int SPARSE_BLOCK = 4096;
    /** -S's largest value: qemu-img's MAX_BUF_SECTORS of 512 bytes. */
    private static final int MAX_SPARSE = 32768 * 512;

    String sourceFormat;
    String outputFormat = "raw";
    boolean outputFormatGiven;
    final List<String> options = new ArrayList<>();
    String backingFile;
    String backingFormat;
    boolean compressed;
    boolean forceShare;
    int requests = ChunkCopy.DEFAULT_REQUESTS;
    boolean outOfOrder;
    boolean progress;
    String targetCache = "unsafe";
    String sourceCache;
    String sparse;
    String snapshot;
    boolean skipCreate;
    boolean bitmaps;
    boolean skipBrokenBitmaps;
    final ProfileOption profile = new ProfileOption();
    boolean quiet;
    boolean targetIsZero;
    String rate;
    boolean salvage;
    boolean copyOffload;
    boolean imageOpts;
    boolean targetImageOpts;
    /** The target's --target-image-opts (or its name alone): what its open takes from them. */
    ImageOpts targetOpts;
    /** The sources, then the target, as given. */
    final List<String> files = new ArrayList<>();
    List<String> sources;
    String target;

    // In code (CodeModel), as info's and check's: the copy starts that much sooner. Declared after the fields it
    // hands picocli (options, profile), which must be set by then.
    final QemuObjects objects = new QemuObjects();
    final CommandSpec spec = CodeModel.of(this, "Convert an image (qcow2 or raw source) to raw or qcow2.")
            .option("-f", "sourceFormat", "Source format (probed when absent).", v -> sourceFormat = v)
            .option("-O", "outputFormat", "Output format: raw (default) or qcow2.", v -> {
                outputFormat = v;
                outputFormatGiven = true;
            })
            .repeatableOption("--object", "objectdef", QemuObjects.HELP, objects.definitions)
            .flag(new String[] {"--image-opts"}, "Each SRC is an option string (driver=qcow2,file.filename=PATH,...).",
                    v -> imageOpts = v)
            .flag(new String[] {"--target-image-opts"}, "With -n: DST is an option string.",
                    v -> targetImageOpts = v)
            .repeatableOption("-o", "options", "qcow2 creation options, as for create.", options)
            .option("-B", "backingFile", "Backing file of the qcow2 target; chunks equal to it are not copied."
                    + " With -n: only what the source's top layer holds is copied, over what the target shows (the"
                    + " name is not used).",
                    v -> backingFile = v)
            .option("-F", "backingFormat", "Backing file format (needed with -B).", v -> backingFormat = v)
            .flag(new String[] {"-c"}, "Compress the qcow2 target's clusters (zlib; zstd with -o"
                    + " compression_type=zstd); clusters that do not shrink are stored uncompressed.",
                    v -> compressed = v)
            .flag(new String[] {"-U", "--force-share"}, "Share the source with writers (qemu-img's -U).",
                    v -> forceShare = v)
            .intOption("-m", "N", "Parallel requests (1 to 16; qemu-img's default, 8).", v -> requests = v)
            .flag(new String[] {"-W"}, "Allow out-of-order writes (in guest order otherwise, as qemu-img; -c always"
                    + " writes in order).", v -> outOfOrder = v)
            .flag(new String[] {"-n"}, "Write into the existing DST, of -O's format and at least SRC's size, instead"
                    + " of creating it (qemu-img's -n): ranges that read as zeroes are written as zeroes.",
                    v -> skipCreate = v)
            .flag(new String[] {"-p"}, "Show a progress bar on stderr.", v -> progress = v)
            .flag(new String[] {"--bitmaps"}, "Copy SRC's persistent dirty bitmaps into the qcow2 target.",
                    v -> bitmaps = v)
            .flag(new String[] {"--skip-broken-bitmaps"}, "With --bitmaps, skip the bitmaps in use rather than fail.",
                    v -> skipBrokenBitmaps = v)
            .option("-t", "targetCache", "Target cache mode; qemu-img convert's default, unsafe, never syncs (a"
                    + " killed convert still leaves the old target or the whole new one; a host crash may not). The"
                    + " others sync the finished file before it is renamed over the target.", v -> targetCache = v)
            .option("-S", "sparseSize", "Zero bytes that must follow each other for the target to keep a hole"
                    + " there (qemu-img's -S: 4k by default, a multiple of 512 up to 16M; blocks of this size aligned"
                    + " to it); 0 writes every byte, allocating the whole target.", v -> sparse = v)
            .option("-l", "snapshot", "Copy internal snapshot SNAPSHOT of SRC (an id or a name, or"
                    + " snapshot.id=ID,snapshot.name=NAME) in place of its active image.", v -> snapshot = v)
            .option("-T", "sourceCache", "Source cache mode: writeback (page cache) or none (O_DIRECT).",
                    v -> sourceCache = v)
            .option("--profile", "profile", ProfileOption.DESCRIPTION, v -> profile.profile = v)
            .flag(new String[] {"--target-is-zero"}, "With -n: DST reads as zeroes already, so ranges of zeroes are"
                    + " not written.", v -> targetIsZero = v)
            .option("-r", "rate", "Write at most RATE bytes a second to the target (what it skips is not counted, as"
                    + " qemu-img's throttle does not count it).",
                    v -> rate = v)
            .flag(new String[] {"--salvage"}, "Read what fails to read as zeroes, a sector at a time, with a warning"
                    + " for each, rather than stop.", v -> salvage = v)
            .flag(new String[] {"-C"}, "Copy offloading, as qemu-img's: data is copied without looking for zeroes in"
                    + " it, into a raw target by the kernel (copy_file_range).",
                    v -> copyOffload = v)
            .flag(new String[] {"-q"}, "Quiet.", v -> quiet = v)
            .parameters(0, 0, "FILE", "The sources (SRC), read one after another as one disk, then the target"
                    + " (DST).", files)
            .spec();

    @Override
    public QemuObjects secretObjects() {
        return objects;
    }

    @Override
    public Integer call() throws IOException {
        long rateLimit = rate == null ? 0 : Sizes.cvtnum("rate limit", rate);
        if (skipBrokenBitmaps && !bitmaps) {
            throw new ImageException("Use of --skip-broken-bitmaps requires --bitmaps"); // qemu-img's words
        }
        if (copyOffload) {
            // qemu-img's checks of -C, in its order and words
            if (compressed) {
                throw new ImageException("Cannot enable copy offloading when -c is used");
            }
            if (sparse != null) {
                throw new ImageException("Cannot enable copy offloading when -S is used");
            }
            if (salvage) {
                throw new ImageException("Cannot use copy offloading in salvaging mode");
            }
        }
        if (targetImageOpts && !skipCreate) {
            throw new ImageException("--target-image-opts requires use of -n flag"); // qemu-img's words
        }
        if (CreateOptionsParser.asksForHelp(CreateOptionsParser.parse(options))) {
            spec.commandLine().getOut().print(CreateOptionsParser.help(outputFormat));
            return 0;
        }
        if (files.size() < 2) {
            throw new ImageException("Must specify image file name"); // qemu-img's words, sources or target missing
        }
        sources = files.subList(0, files.size() - 1);
        target = files.get(files.size() - 1);
        objects.secrets(); // every --object checked first, as qemu-img checks them
        if (!targetImageOpts) {
            ProtocolNames.refuseProtocol(target, ""); // qemu-img convert gives the reason alone
            if (!skipCreate) {
                String file = ProtocolNames.newFile(target, target + ": ");
                if (Files.isDirectory(Path.of(file))) { // its create's refusal, worded by Main
                    throw new FileSystemException(file, null, "Is a directory");
                }
            }
            targetOpts = ImageOpts.of(false, target, null, objects);
        } else {
            if (outputFormatGiven) {
                throw new ImageException("--image-opts and --format are mutually exclusive"); // qemu-img's words
            }
            targetOpts = ImageOpts.parse(target, objects).requireWritable();
            target = targetOpts.fileName();
            Path t = targetOpts.path();
            outputFormat = targetOpts.format() != null ? targetOpts.format()
                    : Files.exists(t) ? ImageFormat.probe(t) : "raw";
        }
        boolean qcow2 = "qcow2".equals(outputFormat);
        if (!qcow2 && !"raw".equals(outputFormat)) {
            throw new ImageException("Unknown output format '" + outputFormat + "': convert writes qcow2 or raw");
        }
        if (compressed && !qcow2) {
            throw new ImageException("Compression not supported for this file format");
        }
        if (skipCreate && !options.isEmpty()) {
            throw new ImageException("-o has no effect when skipping image creation"); // qemu-img's words
        }
        if (targetIsZero && !skipCreate) {
            throw new ImageException("--target-is-zero requires use of -n flag"); // qemu-img's words
        }
        if (!qcow2 && backingFile != null && !skipCreate) {
            throw new ImageException("Backing file not supported for file format '" + outputFormat + "'");
        }
        if (!qcow2 && !options.isEmpty()) {
            throw new ImageException("-o needs -O qcow2");
        }
        if (compressed && !skipCreate) { // qemu-img's checks of the target's options, in its words
            Map<String, String> opts = CreateOptionsParser.parse(options);
            if (EncryptionOptions.asked(opts)) {
                throw new ImageException("Compression and encryption not supported at the same time");
            }
            if (!"off".equals(opts.getOrDefault("preallocation", "off"))) {
                throw new ImageException("Compression and preallocation not supported at the same time");
            }
        }
        int sparseSize = sparseSize();
        SnapshotParam snapshotParam = snapshot == null ? null : SnapshotParam.parse(snapshot, '\'');
        if (requests < 1 || requests > ChunkCopy.MAX_REQUESTS) {
            throw new ImageException("Invalid number of coroutines. Allowed number of coroutines is between 1 and "
                    + ChunkCopy.MAX_REQUESTS); // qemu-img's words
        }
        boolean targetDirect = CacheMode.direct(targetCache); // also rejects unknown modes
        boolean targetSyncs = CacheMode.syncs(targetCache);
        OpenOptions srcOptions = profile.apply(OpenOptions.readOnlyDefaults())
                .withLocking(forceShare ? ImageLocking.FORCE_SHARE : ImageLocking.STILL_SOURCE);
        if (sourceCache != null) {
            srcOptions = srcOptions.withDirect(CacheMode.direct(sourceCache));
        }
        RateLimit limit = new RateLimit(rateLimit);
        if (skipCreate) {
            try (Sources src = openSources(srcOptions, snapshotParam)) {
                intoExisting(src.copied(), targetDirect, targetSyncs, sparseSize, limit);
                if (bitmaps) {
                    BitmapCopy.copy(src.first(), targetOpts.path(), targetOpts.apply(targetOptions(targetDirect,
                            targetSyncs), sparseSize != 0), spec.commandLine().getErr());
                }
            }
            return 0;
        }
        try (Sources src = openSources(srcOptions, snapshotParam);
                AtomicTarget out = AtomicTarget.begin(targetOpts.path())) {
            if (qcow2) {
                toQcow2(src.copied(), out.file(), targetDirect, targetSyncs, sparseSize, limit);
            } else {
                if (bitmaps) {
                    BitmapCopy.checkTarget(outputFormat, 0);
                }
                toRaw(src.copied(), out.file(), targetSyncs, sparseSize, limit);
            }
            if (bitmaps) {
                // Into the file beside the target, before the rename: a refusal leaves no target.
                BitmapCopy.copy(src.first(), out.file(), targetOptions(targetDirect, targetSyncs),
                        spec.commandLine().getErr());
            }
            out.commit(targetSyncs);
        }
        return 0;
    }

    /**
     * The sources as opened ({@code first}, whose snapshot {@code -l} loads and whose bitmaps {@code --bitmaps}
     * copies) and as copied: each salvaged under {@code --salvage}, all concatenated where there are several.
     * Closing {@code copied} closes them all.
     */
    private record Sources(BlockDevice first, BlockDevice copied) implements AutoCloseable {
        @Override
        public void close() throws IOException {
            copied.close();
        }
    }

    /**
     * The sources, the first read as its snapshot where {@code -l} names one (before the target is made, as in
     * qemu-img, which loads a snapshot given as options into the first of several sources and refuses one given by
     * name), and checked for {@code --bitmaps}.
     */
    private Sources openSources(OpenOptions options, SnapshotParam snapshotParam) throws IOException {
        List<BlockDevice> opened = new ArrayList<>();
        try {
            for (String name : sources) {
                ImageOpts source = ImageOpts.of(imageOpts, name, sourceFormat, objects);
                opened.add(source.open(source.format(), source.apply(options)));
            }
            if (snapshotParam != null) {
                if (opened.size() > 1 && snapshotParam.idOrName() != null) {
                    throw new ImageException("No support for concatenating multiple snapshot"); // qemu-img's words
                }
                snapshotParam.load(opened.get(0));
            }
            refuseOnceOpen();
            if (bitmaps) {
                BitmapCopy.checkSource(opened.get(0), skipBrokenBitmaps);
            }
        } catch (IOException | RuntimeException e) {
            try {
                new ConcatenatedSources(opened).close(); // closes each, whatever the others do
            } catch (IOException | RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        List<BlockDevice> copied = new ArrayList<>();
        for (BlockDevice d : opened) {
            copied.add(salvage ? new SalvagingSource(d, quiet ? null : spec.commandLine().getErr()) : d);
        }
        return new Sources(opened.get(0), copied.size() == 1 ? copied.get(0) : new ConcatenatedSources(copied));
    }

    /** qemu-img's refusals that it makes once the sources are open (and a snapshot loaded), in its order and words. */
    private void refuseOnceOpen() throws IOException {
        if (targetIsZero && backingFile != null) {
            throw new ImageException("Cannot use --target-is-zero when the destination image has a backing file");
        }
        if (sources.size() > 1 && backingFile != null) {
            throw new ImageException("Having a backing file for the target makes no sense when concatenating"
                    + " multiple input images");
        }
        if (skipCreate && compressed && backingFile != null) {
            // qemu-img keeps a cluster unless the top layer's status from its start, cut at that layer's L2 slices,
            // shows the backing file for all of it: not emulated.
            throw new UnsupportedFeatureException("convert -n -c -B",
                    "Compressed writes into an existing image over a backing file (convert -n -c -B) are not"
                    + " supported");
        }
        if (sources.size() > 1 && bitmaps) {
            throw new ImageException("Copying bitmaps only possible with single source");
        }
    }

    /**
     * How the target is opened for writing. No preallocated clusters: convert writes whole clusters, which are
     * allocated in runs apart from the pool (and with -c one by one, in guest order), so clusters land where qemu-img
     * convert puts them, and a pool's unused clusters would be left as a gap.
     */
    /** The new image built as {@code file}, opened as {@code target}, the name it will have, for its refusals. */
    private Qcow2Image openNew(Path file, boolean direct, boolean syncs) throws IOException {
        try {
            return Qcow2Image.open(file, targetOptions(direct, syncs));
        } catch (IOException e) {
            throw OpenFailures.replaceContext(e, "Could not open '" + file + "': ", "Could not open '" + target
                    + "': ");
        }
    }

    private OpenOptions targetOptions(boolean direct, boolean syncs) throws IOException {
        return profile.apply(OpenOptions.readWriteDefaults()).withDirect(direct).withHostSyncs(syncs).withPool(false)
                .withEncryptionKey(newTargetKey);
    }

    /** The passphrase of the encrypted image this convert made (-o encrypt.*), or null. */
    private byte[] newTargetKey;

    /** -S as qemu-img reads it: bytes, a multiple of 512 up to 16 MiB; 0 for a fully allocated target. */
    private int sparseSize() {
        if (sparse == null) {
            return SPARSE_BLOCK;
        }
        long v = Sizes.cvtnum("buffer size for sparse output", sparse);
        if (v % 512 != 0 || v > MAX_SPARSE) {
            throw new IllegalArgumentException("Invalid buffer size for sparse output specified. Valid sizes are "
                    + "multiples of 512 up to " + MAX_SPARSE + ". Select 0 to disable sparse detection (fully "
                    + "allocates output).");
        }
        return (int) v;
    }

    private void toRaw(BlockDevice src, Path file, boolean syncs, int sparseSize, RateLimit limit)
            throws IOException {
        try (Storage dst = FileStorage.create(file, false)) {
            // Sized first, as qemu-img does: the writes then fill a file of its final size (no extending writes),
            // and what is never written stays a hole.
            dst.setLength(src.size());
            HostSpace.allocateFirstBlock(dst, src.size()); // as qemu-img's create of the target writes it
            boolean full = sparseSize == 0;
            // Blocks of zeroes stay holes (qemu-img's default -S 4k); with -S 0 every byte is written.
            ChunkCopy.Sink sink = (off, buf, zero) -> full ? () -> dst.write(buf.duplicate(), off)
                    : zero ? ChunkCopy.Write.NONE
                    : () -> ChunkCopy.writeNonZero(off, buf, sparseSize, (at, part) -> dst.write(part, at));
            if (copyOffload) {
                try (CopyOffload offload = CopyOffload.intoRaw(src, file)) {
                    // -C refuses -S: pieces hold no zeroes then, and a new file reads as zeroes anyway
                    copy(src, ChunkCopy.CHUNK, full, limit, offload.offloading(sink, (at, length) -> { }));
                }
            } else {
                copy(src, ChunkCopy.CHUNK, full, limit, sink);
            }
            if (syncs) {
                dst.flush();
            }
        }
    }

    /** Creates and fills the qcow2 image {@code file}; backing and data file names resolve beside the target. */
    private void toQcow2(BlockDevice src, Path file, boolean direct, boolean syncs, int sparseSize,
            RateLimit limit) throws IOException {
        Path path = targetOpts.path();
        Map<String, String> opts = CreateOptionsParser.parse(options);
        opts.put("size", Long.toString(src.size()));
        if (backingFile != null) {
            opts.put("backing_file", backingFile);
        }
        if (backingFormat != null) {
            opts.put("backing_fmt", backingFormat);
        }
        String backing = opts.get("backing_file");
        if (backing != null && !opts.containsKey("backing_fmt")) {
            throw new ImageException("Use of backing file requires explicit backing format"); // qemu-img 7.2's
        }
        CreateOptionsParser.Contexts contexts = CreateOptionsParser.Contexts.ofConvert(target);
        EncryptionOptions.checkNumbers(opts); // QemuOpts' parse of -o
        // As if -u: QEMU's creation does not open the backing file (its open of the new image does).
        CreateOptions co = CreateOptionsParser.toCreateOptions(opts, path, true, contexts);
        if (bitmaps) {
            BitmapCopy.checkTarget(outputFormat, co.version());
        }
        EncryptionOptions encryption;
        try {
            EncryptionOptions.format(opts); // QEMU's order: the alias, the version, then the rest
            CreateOptionsParser.requireKnownCompat(opts);
            encryption = EncryptionOptions.of(opts, objects);
            if (encryption == null) {
                ImageCreator.create(file, co);
            } else {
                newTargetKey = encryption.create(file, co);
            }
        } catch (ImageException e) {
            throw contexts.inCreation(e);
        }
        // close() flushes and leaves a clean image; under -t unsafe its flushes write but never sync.
        try (Qcow2Image dst = openNew(file, direct, syncs)) {
            if (compressed) {
                CompressedSink sink = CompressedSink.intoNew(dst, sparseSize == 0);
                copy(src, sink.chunkSize(), true, limit, sink);
                sink.finish();
                return;
            }
            BlockDevice base = dst.backing();
            if (sparseSize == 0) { // every cluster written, zeroes too, but what the backing file shows already
                copy(src, ChunkCopy.CHUNK, true, limit, (off, buf, zero) ->
                        base != null && BackingCompare.same(base, off, buf)
                        ? ChunkCopy.Write.NONE : () -> dst.write(off, buf.duplicate()));
                return;
            }
            // A run of zeroes shorter than -S is written: with -S past the cluster size, zero clusters between data
            // are allocated, as qemu-img allocates them.
            int granule = Math.max(sparseSize, (int) dst.header().clusterSize());
            // Without a backing file, ranges of zeroes are left as they are in a new image: unallocated. Not where
            // the new image has preallocated encrypted clusters, whose host zeroes read as noise (QEMU's
            // has_zero_init is false there too): zeroes are written as over a backing file.
            boolean readsZeroes = base == null && (encryption == null || "off".equals(co.preallocation()));
            ChunkCopy.Sink sink = (off, buf, zero) -> {
                boolean unchanged = readsZeroes ? zero || ZeroData.isZero(buf)
                        : base != null && BackingCompare.same(base, off, buf);
                if (unchanged) {
                    return ChunkCopy.Write.NONE;
                }
                if (zero || ZeroData.isZero(buf)) {
                    // Over a backing file zeroes must be written, but need no data clusters.
                    return () -> dst.writeZeroes(off, buf.remaining(), false);
                }
                if (!readsZeroes) {
                    return () -> dst.write(off, buf.duplicate());
                }
                // Clusters of zeroes stay unallocated.
                return () -> ChunkCopy.writeNonZero(off, buf, granule, dst::write);
            };
            if (copyOffload && base == null) { // over a backing file -C keeps the comparison with it above
                // Where the new image reads zeroes they need no writing; not over preallocated encrypted clusters.
                sink = CopyOffload.throughProcess(src).writingWhole(sink, dst, readsZeroes ? (at, length) -> { }
                        : (at, length) -> dst.writeZeroes(at, length, false));
            }
            copy(src, ChunkCopy.CHUNK, !readsZeroes, limit, sink);
        }
    }

    /**
     * -n: copies into the existing target, in place (no file beside it, no rename). The target may hold data, so
     * what reads as zeroes in the source is written as zeroes (unmapped where the target can), runs of zeroes
     * shorter than -S as data, as qemu-img does when the target is not known to read as zeroes; with {@code
     * --target-is-zero} it is known to, and they are left.
     */
    private void intoExisting(BlockDevice src, boolean direct, boolean syncs, int sparseSize, RateLimit limit)
            throws IOException {
        Path path = targetOpts.path();
        if (!Files.exists(path)) {
            throw new NoSuchFileException(targetOpts.fileName()); // qemu-img's "Could not open" comes from its open
        }
        // qemu-img opens the target with unmap unless -S 0 (its BDRV_O_UNMAP for min_sparse)
        // a format probed (--target-image-opts without driver=): a raw target's first sector guarded, as QEMU's
        String opened = targetImageOpts && targetOpts.format() == null ? null : outputFormat;
        try (BlockDevice dst = targetOpts.open(opened, targetOpts.apply(targetOptions(direct, syncs),
                sparseSize != 0))) {
            if (bitmaps) {
                BitmapCopy.checkTarget(outputFormat, dst instanceof Qcow2Image q ? q.header().version() : 0);
            }
            if (dst.size() < src.size()) {
                throw new ImageException("output file is smaller than input file"); // qemu-img's words
            }
            // --target-is-zero: what reads as zeroes, ranges the source reports so and zero blocks in its data, is
            // left as it is, as qemu-img leaves it (has_zero_init), and the copy passes over the ranges; but -S 0
            // writes every byte, as qemu-img's does even then.
            ChunkCopy.ZeroWriter zeroes = targetIsZero ? (at, length) -> { }
                    : (at, length) -> dst.writeZeroes(at, length, true);
            ChunkCopy.Sink sink;
            int chunk = ChunkCopy.CHUNK;
            CompressedSink compressing = null;
            if (compressed) { // a qcow2 target: -c needs one
                compressing = CompressedSink.intoExisting((Qcow2Image) dst, sparseSize == 0, zeroes);
                sink = compressing;
                chunk = compressing.chunkSize();
            } else {
                sink = (off, buf, zero) -> {
                    if (zero && sparseSize != 0) {
                        return () -> zeroes.writeZeroes(off, buf.remaining());
                    }
                    if (sparseSize == 0) {
                        return () -> dst.write(off, buf.duplicate());
                    }
                    return () -> ChunkCopy.writeNonZero(off, buf, sparseSize, dst::write, zeroes);
                };
            }
            // -C: into a raw file (not under -B, whose pieces may hold the backing file's data) the kernel copies;
            // elsewhere the data is written whole.
            boolean kernelCopies = copyOffload && backingFile == null && dst instanceof RawImage && dst.path() != null;
            if (copyOffload && !kernelCopies) {
                sink = CopyOffload.throughProcess(src).writingWhole(sink, dst, zeroes);
            }
            BlockDevice reading = src;
            if (backingFile != null) { // -n -B: what the source's top layer holds
                TopLayerCopy top = new TopLayerCopy(src);
                reading = top.reading();
                sink = top.sink(sink);
            }
            CopyOffload kernel = kernelCopies ? CopyOffload.intoRaw(src, dst.path()) : null;
            try (kernel) {
                copy(reading, chunk, compressed || !targetIsZero || sparseSize == 0, limit,
                        kernel == null ? sink : kernel.offloading(sink, zeroes));
            }
            if (compressing != null) {
                compressing.finish();
            }
            if (syncs) {
                dst.flush();
            }
        }
    }

    /** {@code zeroesToSink}: the sink must see the ranges that read as zeroes too (a new file keeps no holes). */
    private void copy(BlockDevice src, int chunk, boolean zeroesToSink, RateLimit limit, ChunkCopy.Sink sink)
            throws IOException {
        // -c writes in guest order even with -W (qemu-img 7.2 accepts both): the clusters then pack as QEMU's do.
        ChunkCopy.Settings settings = new ChunkCopy.Settings(chunk, requests, !outOfOrder || compressed,
                zeroesToSink, limit);
        if (!progress) {
            ChunkCopy.run(src, settings, sink, n -> { });
            return;
        }
        try (ProgressBar bar = ProgressBars.open(true, "convert", src.size())) {
            LongConsumer step = bar::stepBy;
            ChunkCopy.run(src, settings, sink, step);
        }
    }
}
