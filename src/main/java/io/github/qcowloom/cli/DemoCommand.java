package io.github.qcowloom.cli;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import io.github.qcowloom.exec.ExecutionModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * The README's main job: creates a default image, has qemu-io write patterns into it when qemu-io is installed,
 * prints info, reads the whole image back on virtual threads and checks every pattern, then prints one table of
 * the standard bench set on both executors and on qemu-img bench.
 */
@Command(description = "Create an image, write it with qemu-io, show info and read it back.")
final class DemoCommand implements Callable<Integer> {
    private static final long SIZE = 256L << 20;
    /** The allocated image the read and overwrite benchmarks run on. */
    private static final long BENCH_SIZE = 256L << 20;
    /** Pattern byte written at each MiB i that is a multiple of 3 (0 elsewhere). */
    private static final int STEP_MIB = 3;
    /** Untimed requests before each timed run, so the figures are of JIT-compiled code (see BenchRunner.warmUp). */
    private static final int WARMUP = 40_000;

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "DIR", defaultValue = "target/demo")
    Path dir;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        Files.createDirectories(dir);
        Path image = dir.resolve("demo.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(SIZE));
        out.println("created " + image + " (" + Sizes.human(SIZE) + ", 64 KiB clusters, compat 1.1)");
        boolean written = writeWithQemuIo(image, out);
        out.println();
        Main.run(out, spec.commandLine().getErr(), "info", image.toString());
        out.println();
        readBack(image, written, out);
        out.println();
        benchTable(out);
        return 0;
    }

    /** The standard bench set on both executors, and on qemu-img bench when it is installed: one table. */
    private void benchTable(PrintWriter out) throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        int count = 60_000;
        Path allocated = dir.resolve("bench-allocated.qcow2");
        Path empty = dir.resolve("bench-empty.qcow2");
        Path run = dir.resolve("bench-run.qcow2");
        ImageCreator.create(empty, CreateOptions.defaults(4L << 30));
        ImageCreator.create(allocated, CreateOptions.defaults(BENCH_SIZE));
        try (Qcow2Image img = Qcow2Image.open(allocated, OpenOptions.readWriteDefaults())) {
            ByteBuffer chunk = ByteBuffer.allocate(1 << 20);
            for (long off = 0; off < BENCH_SIZE; off += chunk.capacity()) {
                img.write(off, chunk.clear());
            }
        }
        boolean qemu = qemuImgInstalled();
        out.printf("%-44s %10s %10s %10s %8s%n", "4 KiB requests, depth 64, " + count + " each (IOPS)", "virtual",
                "pool:64", qemu ? "qemu-img" : "", qemu ? "ratio" : "");
        String[] names = {"reads of allocated clusters", "overwrites of allocated clusters",
            "allocating writes (a new 64 KiB cluster each)"};
        for (int w = 0; w < names.length; w++) {
            boolean write = w > 0;
            Path source = w == 2 ? empty : allocated;
            BenchRunner.BenchSpec spec = new BenchRunner.BenchSpec(count, 64, 4096, 0, w == 2 ? 65536 : 4096, write,
                    0, 0, true, "writeback", false, "qcow2");
            double[] iops = new double[3];
            String[] models = {"virtual", "pool:64"};
            for (int m = 0; m < models.length; m++) {
                OpenOptions o = OpenOptions.readWriteDefaults().withReadOnly(!write);
                ExecutionModel model = ExecutionModel.parse(models[m]);
                BenchRunner.warmUp(spec.withCount(WARMUP), source, o, model, err);
                Files.copy(source, run, StandardCopyOption.REPLACE_EXISTING);
                iops[m] = BenchRunner.run(spec, run, o, model, err).iops(count);
            }
            if (qemu) {
                Files.copy(source, run, StandardCopyOption.REPLACE_EXISTING);
                iops[2] = count / BenchRunner.runQemu(spec, run);
            }
            out.printf("%-44s %10.0f %10.0f %10s %8s%n", names[w], iops[0], iops[1],
                    qemu ? String.format("%.0f", iops[2]) : "", qemu ? String.format("%.2fx", iops[0] / iops[2]) : "");
        }
        Files.deleteIfExists(run);
        out.println("(single runs after " + WARMUP + " untimed warm-up requests each; the page cache and other load "
                + "move them: bench --warmup N --against-qemu gives medians)");
    }

    private static boolean qemuImgInstalled() {
        try {
            return new ProcessBuilder("qemu-img", "--version").redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start().waitFor() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private static boolean writeWithQemuIo(Path image, PrintWriter out) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", "qcow2"));
        for (long mib = 0; mib < SIZE >> 20; mib += STEP_MIB) {
            cmd.add("-c");
            cmd.add("write -P " + pattern(mib) + " " + mib + "M 1M");
        }
        cmd.add(image.toString());
        Process p;
        try {
            p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .start();
        } catch (IOException e) {
            out.println("qemu-io not found: the image stays empty (apt-get install qemu-utils to write it)");
            return false;
        }
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("qemu-io failed writing the demo image");
        }
        out.println("qemu-io wrote a 1 MiB pattern every " + STEP_MIB + " MiB");
        return true;
    }

    private static int pattern(long mib) {
        return (int) (mib % 250) + 1;
    }

    private static void readBack(Path image, boolean written, PrintWriter out) throws Exception {
        long start = System.nanoTime();
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults());
                ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<Long>> results = new ArrayList<>();
            for (long mib = 0; mib < SIZE >> 20; mib++) {
                long m = mib;
                results.add(threads.submit(() -> checkMiB(img, m, written)));
            }
            long bad = 0;
            for (Future<Long> f : results) {
                bad += f.get();
            }
            double secs = (System.nanoTime() - start) / 1e9;
            out.printf("read back %s on %d virtual threads in %.3f s (%.0f MiB/s): %s%n", Sizes.human(SIZE),
                    results.size(), secs, (SIZE >> 20) / secs, bad == 0 ? "every byte as written" : bad
                            + " bytes differ");
            if (bad != 0) {
                throw new IOException("read-back mismatch");
            }
        }
    }

    /** Reads one MiB and returns how many bytes differ from what qemu-io wrote there. */
    private static long checkMiB(Qcow2Image img, long mib, boolean written) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(1 << 20);
        img.read(mib << 20, buf);
        byte expected = written && mib % STEP_MIB == 0 ? (byte) pattern(mib) : 0;
        long bad = 0;
        for (int i = 0; i < buf.capacity(); i++) {
            if (buf.get(i) != expected) {
                bad++;
            }
        }
        return bad;
    }
}
