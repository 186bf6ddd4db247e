package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageFormat;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Function;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code bench}: qemu-img bench's flags and meaning (COUNT requests of BUFFER_SIZE bytes, DEPTH in flight, offsets
 * from OFFSET by STEP wrapping at the end of the disk, timed from the first submission to the last completion),
 * plus {@code --exec} and {@code --against-qemu}, which runs qemu-img bench with the same flags on identical copies
 * of the image, alternating, and prints both medians and their ratio. {@code -d} and {@code --exec} take
 * comma-separated lists: one call runs every (executor, depth) pair, writes each on a fresh copy of the image.
 * {@code --report DIR} keeps every figure in DIR/results.json (added to what earlier calls left there) and draws
 * DIR/index.html from it.
 */
@Command(description = "Run a simple I/O benchmark, as qemu-img bench does.")
final class BenchCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    // The numbers are read as qemu-img reads them (QemuNumbers: 0x hex, 0 octal), in call(), with its messages.
    @Option(names = "-c", paramLabel = "COUNT", description = "Number of requests (default 75000).")
    String countText = "75000";

    @Option(names = "-d", split = ",", defaultValue = "64", paramLabel = "DEPTH",
            description = "Requests in flight at once (default 64); a comma-separated list runs each.")
    String[] depthTexts;

    @Option(names = "-f", paramLabel = "FMT", description = "Image format: qcow2 or raw (default: probed).")
    String format;

    @Option(names = "-s", description = "Request size (default 4k).")
    String bufferSize = "4k";

    @Option(names = "-o", description = "First offset (default 0).")
    String offset = "0";

    @Option(names = "-S", description = "Step between offsets (default: the request size).")
    String step;

    @Option(names = {"-U", "--force-share"}, description = "Share the image with writers (reads only, as qemu-img).")
    boolean forceShare;

    @Option(names = "-w", description = "Write instead of read.")
    boolean write;

    @Option(names = "--pattern", paramLabel = "BYTE", description = "Byte written by -w (default 0).")
    String patternText = "0";

    @Option(names = "--flush-interval", paramLabel = "N",
            description = "Writes only: drain and flush after every N requests (N >= depth).")
    String flushText = "0";

    @Option(names = "--no-drain", description = "Flush without draining: the requests in flight go on.")
    boolean noDrain;

    @Option(names = "-i", paramLabel = "AIO", description = "qemu-img's aio mode, as a storage backend: io_uring, "
            + "threads (FileChannel, blocking calls on the request threads) or native (Linux AIO: not supported).")
    String aio;

    @Option(names = "-n", description = "aio=native, as qemu-img's -n (not supported).")
    boolean nativeAio;

    @Option(names = "-t", description = "Cache mode: writeback (default) or none (O_DIRECT).")
    String cache = "writeback";

    @Option(names = "--storage", paramLabel = "BACKEND", description = "auto (default: io_uring with -t none, "
            + "FileChannel through the page cache), io_uring (FileChannel where it cannot run) or filechannel.")
    String storage;

    @Option(names = "--exec", split = ",", paramLabel = "MODEL", description = "auto (the default: "
            + "loop:1 with O_DIRECT through io_uring, else virtual), virtual, loop:N (virtual threads on N io_uring "
            + "event loops) or pool:N platform threads; a comma-separated list runs each.")
    List<String> execs;

    @Mixin
    ProfileOption profile = new ProfileOption();

    @Option(names = "--batch", description = "Batch submit: DEPTH writes at a time, their clusters reserved in one "
            + "refcount update.")
    boolean batch;

    @Option(names = "--against-qemu", description = "Alternate with qemu-img bench on copies: 3 pairs (--pairs), "
            + "medians, and each pair's ratio. With -t none, qemu-img runs with -i native and with -i io_uring, and "
            + "the faster is compared.")
    boolean againstQemu;

    @Option(names = "--pairs", paramLabel = "N", description = "With --against-qemu: rounds of alternating runs "
            + "(default 3); the 2nd, 4th, ... run qemu-img first.")
    int pairs = 3;

    @Option(names = "--warmup", description = "Untimed requests first, on a scratch copy of the image, so the "
            + "request path runs JIT-compiled as in a long-running process (default 0: cold, as timed so far).")
    int warmup;

    @Option(names = "--report", paramLabel = "DIR", description = "Add every figure to DIR/results.json (kept "
            + "across calls) and draw DIR/index.html from it: IOPS, latency and CPU per I/O by depth.")
    Path reportDir;

    @Option(names = "-q", description = "Quiet: only the summary line.")
    boolean quiet;

    @Option(names = "--image-opts", description = ImageOpts.HELP + " qemu-img bench takes no --object, and nor "
            + "does this: an encrypted image is not benched.")
    boolean imageOpts;

    @Parameters(index = "0", paramLabel = "FILE")
    String name;

    /** The image as named (FILE, or the options it holds). */
    private ImageOpts image;
    /** The image file. */
    private Path file;

    // Read from the options' text by readNumbers().
    private int count;
    private int[] depths;
    private int pattern;
    private int flushInterval;
    /** -f, or the format probed. */
    private String imageFormat;

    /** The medians of the qemu-img runs under one aio mode. */
    private record QemuMedian(String aio, double seconds, double cpuSeconds) {
    }

    @Override
    public Integer call() throws Exception {
        // qemu-img bench checks its numbers and sizes as it reads its options, before it opens anything.
        readNumbers();
        requestSize();
        stepBytes();
        offsetBytes();
        if (aio != null && !List.of("threads", "native", "io_uring").contains(aio)) {
            throw new IllegalArgumentException("Invalid aio option: " + aio);
        }
        String aioMode = nativeAio ? "native" : aio; // -n sets native whatever -i says, as in qemu-img
        if (!write && flushInterval != 0) {
            throw new IllegalArgumentException("--flush-interval is only available in write tests");
        }
        if (pairs < 1) {
            throw new IllegalArgumentException("--pairs must be at least 1");
        }
        for (int depth : depths) {
            if (depth < 1) {
                throw new IllegalArgumentException("-d must be at least 1"); // qemu-img waits forever
            }
            if (flushInterval != 0 && flushInterval < depth) {
                throw new IllegalArgumentException("Flush interval can't be smaller than depth");
            }
        }
        image = ImageOpts.of(imageOpts, name, format);
        file = image.path();
        imageFormat = image.formatOrProbe(write ? spec.commandLine().getErr() : null);
        if (!imageFormat.equals("qcow2") && !imageFormat.equals("raw")) {
            throw ImageFormat.unknownDriver(file, imageFormat);
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (write) {
            image.requireWritable();
        }
        // The image's own options (cache.direct, ...) over -t's, as in QEMU's open.
        OpenOptions options = image.apply(profile.apply(OpenOptions.readWriteDefaults())
                .withDirect(CacheMode.direct(cache)).withReadOnly(!write));
        if (forceShare) {
            if (write) {
                throw new IllegalArgumentException("force-share=on can only be used with read-only images");
            }
            options = options.withLocking(ImageLocking.FORCE_SHARE);
        }
        if (storage != null) {
            options = options.withTuning(options.tuning().withStorage(StorageBackend.parse(storage)));
        }
        if (aioMode != null) {
            options = options.withTuning(options.tuning().withStorage(CacheMode.aioBackend(aioMode, options.direct(),
                    file)));
        }
        // qemu-img bench opens the image before it prints anything, and names it as given where the open fails
        // (the runs below open copies). Read-only here: this open must not change the image.
        try (BlockDevice opened = image.open(imageFormat, options.withReadOnly(true))) {
            opened.size();
        }
        List<ExecutionModel> models = new ArrayList<>();
        for (String e : execs != null ? execs : List.of(options.tuning().execution())) {
            models.add(ExecutionModel.resolve(e.trim(), options.direct(), options.tuning().storage()));
        }
        boolean sweep = models.size() * depths.length > 1;
        List<String> aios = !againstQemu ? List.of()
                : aioMode != null ? List.of(aioMode) : qemuAios(options.direct(), this::probe, out);
        List<Object> results = new ArrayList<>();
        Path copy = file.resolveSibling(file.getFileName() + ".bench-copy");
        try {
            for (ExecutionModel model : models) {
                for (int depth : depths) {
                    results.add(runOne(out, err, options, model, depth, aios, sweep, copy));
                }
            }
        } finally {
            if (againstQemu || sweep && write) {
                Files.deleteIfExists(copy);
            }
        }
        if (reportDir != null) {
            List<String> argv = new ArrayList<>(List.of("qcow2-loom"));
            argv.addAll(spec.commandLine().getParseResult().originalArgs());
            Path html = BenchReport.write(reportDir, BenchReport.call(argv, workloadFigures(), results), err);
            out.println("report: " + html);
        }
        return 0;
    }

    /** Runs one (executor, depth) pair as the single-valued command always has, and returns its figures. */
    private Map<String, Object> runOne(PrintWriter out, PrintWriter err, OpenOptions options, ExecutionModel model,
            int depth, List<String> aios, boolean sweep, Path copy) throws Exception {
        BenchRunner.BenchSpec work = workload(depth);
        out.printf("Sending %d %s requests, %d bytes each, %d in parallel (starting at offset %d, step size %d), "
                + "%s, %s, %s%n", count, write ? "write" : "read", requestSize(), depth, offsetBytes(),
                stepBytes(), model, options.direct() ? "O_DIRECT" : "page cache",
                options.tuning().storage().resolve(options.direct()));
        if (flushInterval > 0) {
            out.printf("Sending flush every %d requests%n", flushInterval);
        }
        if (warmup > 0) {
            BenchRunner.warmUp(work.withCount(warmup), file, options, model, err);
        }
        if (!againstQemu) {
            // A sweep of writes runs each pair on a fresh copy, so no pair finds the clusters another allocated.
            Path target = sweep && write ? copy : file;
            if (target == copy) {
                BenchCopy.restore(file, copy);
            }
            BenchRunner.Result r = BenchRunner.run(work, target, options, model, err);
            report(out, "qcow2-loom", r);
            return BenchReport.result(model.toString(), depth, count, List.of(r), Map.of());
        }
        List<BenchRunner.Result> ours = new ArrayList<>();
        Map<String, List<BenchRunner.QemuResult>> qemu = new LinkedHashMap<>();
        List<Double> pairRatios = new ArrayList<>();
        for (int pair = 0; pair < pairs; pair++) {
            // Each run starts from the same image state, on the same blocks (BenchCopy): allocating runs see a fresh
            // image every time. Which tool runs first alternates, so that neither always follows the other's traces
            // (the host's writeback of a copy, a warm cache).
            boolean qemuFirst = pair % 2 == 1;
            double fastestQemu = Double.MAX_VALUE;
            if (qemuFirst) {
                fastestQemu = runQemuRound(out, work, aios, copy, pair, qemu);
            }
            BenchCopy.restore(file, copy);
            BenchRunner.Result r = BenchRunner.run(work, copy, options, model, err);
            ours.add(r);
            report(out, "qcow2-loom run " + (pair + 1), r);
            if (!qemuFirst) {
                fastestQemu = runQemuRound(out, work, aios, copy, pair, qemu);
            }
            pairRatios.add(fastestQemu / r.seconds());
        }
        double o = median(ours.stream().map(BenchRunner.Result::seconds).toList());
        double oCpu = median(ours.stream().map(BenchRunner.Result::cpuSeconds).toList());
        List<QemuMedian> medians = new ArrayList<>();
        for (Map.Entry<String, List<BenchRunner.QemuResult>> e : qemu.entrySet()) {
            medians.add(new QemuMedian(e.getKey(), median(e.getValue().stream().map(BenchRunner.QemuResult::seconds)
                    .toList()), median(e.getValue().stream().map(BenchRunner.QemuResult::cpuSeconds).toList())));
        }
        QemuMedian best = medians.get(0);
        for (QemuMedian m : medians) {
            if (m.seconds() < best.seconds()) {
                best = m;
            }
        }
        String who = "qemu-img";
        if (medians.size() > 1) {
            StringBuilder line = new StringBuilder("median: qemu-img");
            for (QemuMedian m : medians) {
                line.append(String.format(" -i %s %.3f s (%.0f IOPS, %s),", m.aio(), m.seconds(), count / m.seconds(),
                        cpuPerIo(m.cpuSeconds())));
            }
            out.println(line.append(" faster: -i ").append(best.aio()));
            who = "qemu-img -i " + best.aio();
        }
        out.printf("median: qcow2-loom %.3f s (%.0f IOPS), %s %.3f s (%.0f IOPS): %.2fx qemu-img; CPU per I/O: "
                + "qcow2-loom %s, qemu-img %s%n", o, count / o, who, best.seconds(), count / best.seconds(),
                best.seconds() / o, micros(oCpu), micros(best.cpuSeconds()));
        List<Double> sorted = new ArrayList<>(pairRatios);
        sorted.sort(null);
        out.printf("per pair, qcow2-loom against qemu-img's faster run of the same pair: %s (min %.2fx, median "
                + "%.2fx, max %.2fx)%n", String.join(" ", pairRatios.stream().map(x -> String.format("%.2fx", x))
                .toList()), sorted.get(0), median(pairRatios), sorted.get(sorted.size() - 1));
        Map<String, Object> result = BenchReport.result(model.toString(), depth, count, ours, qemu);
        result.put("pair_ratios", new ArrayList<Object>(pairRatios));
        return result;
    }

    /** One run of qemu-img bench per aio mode, each on the copy restored; returns the fastest run's seconds. */
    private double runQemuRound(PrintWriter out, BenchRunner.BenchSpec work, List<String> aios, Path copy, int pair,
            Map<String, List<BenchRunner.QemuResult>> qemu) throws Exception {
        double fastest = Double.MAX_VALUE;
        for (String aio : aios) {
            BenchCopy.restore(file, copy);
            BenchRunner.QemuResult q = BenchRunner.runQemu(work, copy, aio, image);
            qemu.computeIfAbsent(aio, a -> new ArrayList<>()).add(q);
            out.printf("%s run %d: %.3f s, %.0f IOPS, %s%n", qemuLabel(aio), pair + 1, q.seconds(),
                    count / q.seconds(), cpuPerIo(q.cpuSeconds()));
            fastest = Math.min(fastest, q.seconds());
        }
        return fastest;
    }

    /**
     * The aio modes of qemu-img to compare with. With the page cache: qemu-img's default (null: no {@code -i},
     * which is aio=threads), as always. With O_DIRECT: {@code native} and {@code io_uring}, the two a hypervisor
     * would pick, each kept only if {@code probe} (null if qemu-img accepts it, else its message) accepts it; if
     * neither is, qemu-img's default again. Each one refused is said on {@code out}.
     */
    static List<String> qemuAios(boolean direct, Function<String, String> probe, PrintWriter out) {
        if (!direct) {
            return java.util.Collections.singletonList(null);
        }
        List<String> aios = new ArrayList<>();
        for (String aio : List.of("native", "io_uring")) {
            String refused = probe.apply(aio);
            if (refused == null) {
                aios.add(aio);
            } else {
                out.println("qemu-img bench -i " + aio + " refused here (" + refused.replace('\n', ' ').trim()
                        + "): comparing without it");
            }
        }
        return aios.isEmpty() ? java.util.Collections.singletonList(null) : aios;
    }

    private String probe(String aio) {
        try {
            return BenchRunner.probeQemuAio(workload(depths[0]), file, aio, image);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted";
        }
    }

    /** "qemu-img  " as the single run has always printed it, or "qemu-img native  " etc. with -i. */
    private static String qemuLabel(String aio) {
        return aio == null ? "qemu-img  " : String.format("qemu-img %-8s", aio);
    }

    private String cpuPerIo(double cpuSeconds) {
        return micros(cpuSeconds) + " CPU per I/O";
    }

    private String micros(double cpuSeconds) {
        return Double.isNaN(cpuSeconds) || count == 0 ? "n/a" : String.format("%.1f us", cpuSeconds * 1e6 / count);
    }

    /** -s, in qemu-img bench's words and bounds. */
    private int requestSize() {
        return (int) Sizes.cvtnum("buffer size", bufferSize, Integer.MAX_VALUE);
    }

    private long offsetBytes() {
        return Sizes.cvtnum("offset", offset);
    }

    private long stepBytes() {
        return step == null ? requestSize() : Sizes.cvtnum("step_size", step, Integer.MAX_VALUE);
    }

    private BenchRunner.BenchSpec workload(int depth) {
        return new BenchRunner.BenchSpec(count, depth, requestSize(), offsetBytes(), stepBytes(), write,
                pattern, flushInterval, !noDrain, cache, batch, imageFormat);
    }

    /** -c, -d, --pattern and --flush-interval, in qemu-img bench's bounds and words. */
    private void readNumbers() {
        count = (int) QemuNumbers.atMost(countText, Integer.MAX_VALUE, "Invalid request count specified");
        depths = new int[depthTexts.length];
        for (int i = 0; i < depths.length; i++) {
            depths[i] = (int) QemuNumbers.atMost(depthTexts[i], Integer.MAX_VALUE, "Invalid queue depth specified");
        }
        pattern = (int) QemuNumbers.atMost(patternText, 0xff, "Invalid pattern byte specified");
        flushInterval = (int) QemuNumbers.atMost(flushText, Integer.MAX_VALUE, "Invalid flush interval specified");
    }

    /** The workload as the report keeps it: what is the same for every pair of this call. */
    private Map<String, Object> workloadFigures() {
        Map<String, Object> w = new LinkedHashMap<>();
        w.put("rw", write ? "write" : "read");
        w.put("count", count);
        w.put("size", requestSize());
        w.put("offset", offsetBytes());
        w.put("step", stepBytes());
        w.put("cache", cache);
        w.put("flush_interval", flushInterval);
        w.put("batch", batch);
        w.put("pattern", pattern);
        w.put("profile", profile.profile);
        w.put("warmup", warmup);
        w.put("image", file.toAbsolutePath().toString());
        return w;
    }

    private void report(PrintWriter out, String who, BenchRunner.Result r) {
        double mib = (double) count * requestSize() / (1 << 20) / r.seconds();
        out.printf("%s: Run completed in %.3f seconds: %.0f IOPS, %.1f MiB/s, latency p50 %.0f us p99 %.0f us, "
                + "%d host syncs (%d of a range), %.2f s CPU, %s%n", who, r.seconds(), count / r.seconds(), mib,
                r.p50Micros(), r.p99Micros(), r.syncs(), r.rangedSyncs(), r.cpuSeconds(), cpuPerIo(r.cpuSeconds()));
        if (!r.uring().none()) {
            out.println("  " + r.uring().describe());
        }
    }

    private static double median(List<Double> v) {
        List<Double> s = new ArrayList<>(v);
        s.sort(null);
        return s.get(s.size() / 2);
    }
}
