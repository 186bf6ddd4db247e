package io.github.qcowloom.cli;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.ExecutionModel;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
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
 * of the image, alternating, and prints both medians and their ratio.
 */
@Command(name = "bench", description = "Run a simple I/O benchmark, as qemu-img bench does.")
final class BenchCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "-c", description = "Number of requests (default 75000).")
    int count = 75000;

    @Option(names = "-d", description = "Requests in flight at once (default 64).")
    int depth = 64;

    @Option(names = "-s", description = "Request size (default 4k).")
    String bufferSize = "4k";

    @Option(names = "-o", description = "First offset (default 0).")
    String offset = "0";

    @Option(names = "-S", description = "Step between offsets (default: the request size).")
    String step;

    @Option(names = "-w", description = "Write instead of read.")
    boolean write;

    @Option(names = "--pattern", description = "Byte written by -w (default 0).")
    int pattern;

    @Option(names = "--flush-interval", description = "Drain and flush after every N requests (N >= depth).")
    int flushInterval;

    @Option(names = "-t", description = "Cache mode: writeback (default) or none (O_DIRECT).")
    String cache = "writeback";

    @Option(names = "--exec", description = "virtual (default) or pool:N platform threads.")
    String exec;

    @Mixin
    ProfileOption profile = new ProfileOption();

    @Option(names = "--batch", description = "Batch submit: DEPTH writes at a time, their clusters reserved in one "
            + "refcount update.")
    boolean batch;

    @Option(names = "--against-qemu", description = "Alternate with qemu-img bench on copies: 3 pairs, medians.")
    boolean againstQemu;

    @Option(names = "--warmup", description = "Untimed requests first, on a scratch copy of the image, so the "
            + "request path runs JIT-compiled as in a long-running process (default 0: cold, as timed so far).")
    int warmup;

    @Option(names = "-q", description = "Quiet: only the summary line.")
    boolean quiet;

    @Parameters(index = "0", paramLabel = "FILE")
    Path file;

    @Override
    public Integer call() throws Exception {
        if (flushInterval != 0 && flushInterval < depth) {
            throw new IllegalArgumentException("--flush-interval must be at least the queue depth");
        }
        PrintWriter out = spec.commandLine().getOut();
        OpenOptions options = profile.apply(OpenOptions.readWriteDefaults())
                .withDirect(CacheMode.direct(cache)).withReadOnly(!write);
        ExecutionModel model = ExecutionModel.parse(exec != null ? exec : options.tuning().execution());
        out.printf("Sending %d %s requests, %d bytes each, %d in parallel (starting at offset %d, step size %d), "
                + "%s, %s%n", count, write ? "write" : "read", bytes(bufferSize), depth, bytes(offset),
                stepBytes(), model, options.direct() ? "O_DIRECT" : "page cache");
        if (warmup > 0) {
            BenchRunner.warmUp(workload().withCount(warmup), file, options, model, spec.commandLine().getErr());
        }
        if (!againstQemu) {
            report(out, "qcow2-loom", BenchRunner.run(workload(), file, options, model, spec.commandLine().getErr()));
            return 0;
        }
        List<Double> ours = new ArrayList<>();
        List<Double> qemu = new ArrayList<>();
        Path copy = file.resolveSibling(file.getFileName() + ".bench-copy");
        try {
            for (int pair = 0; pair < 3; pair++) {
                // Each run starts from the same image state: allocating runs see a fresh image every time.
                Files.copy(file, copy, StandardCopyOption.REPLACE_EXISTING);
                BenchRunner.Result r = BenchRunner.run(workload(), copy, options, model, spec.commandLine().getErr());
                ours.add(r.seconds());
                report(out, "qcow2-loom run " + (pair + 1), r);
                Files.copy(file, copy, StandardCopyOption.REPLACE_EXISTING);
                double q = BenchRunner.runQemu(workload(), copy);
                qemu.add(q);
                out.printf("qemu-img   run %d: %.3f s, %.0f IOPS%n", pair + 1, q, count / q);
            }
        } finally {
            Files.deleteIfExists(copy);
        }
        double o = median(ours);
        double q = median(qemu);
        out.printf("median: qcow2-loom %.3f s (%.0f IOPS), qemu-img %.3f s (%.0f IOPS): %.2fx qemu-img%n", o,
                count / o, q, count / q, q / o);
        return 0;
    }

    private long bytes(String s) {
        return Sizes.parse(s);
    }

    private long stepBytes() {
        return step == null ? bytes(bufferSize) : bytes(step);
    }

    private BenchRunner.BenchSpec workload() {
        return new BenchRunner.BenchSpec(count, depth, (int) bytes(bufferSize), bytes(offset), stepBytes(), write,
                pattern, flushInterval, cache, batch);
    }

    private void report(PrintWriter out, String who, BenchRunner.Result r) {
        double mib = (double) count * bytes(bufferSize) / (1 << 20) / r.seconds();
        out.printf("%s: Run completed in %.3f seconds: %.0f IOPS, %.1f MiB/s, latency p50 %.0f us p99 %.0f us, "
                + "%d host syncs, %.2f s CPU%n", who, r.seconds(), count / r.seconds(), mib, r.p50Micros(),
                r.p99Micros(), r.syncs(), r.cpuSeconds());
    }

    private static double median(List<Double> v) {
        List<Double> s = new ArrayList<>(v);
        s.sort(null);
        return s.get(s.size() / 2);
    }
}
