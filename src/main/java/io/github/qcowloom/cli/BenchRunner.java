package io.github.qcowloom.cli;

import io.github.qcowloom.api.AsyncBlockDevice;
import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.BatchSubmitter;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.storage.CountingStorage;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.storage.Java22Method;
import io.github.qcowloom.storage.LockPermissions;
import io.github.qcowloom.api.ImageLockedException;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One run of qemu-img bench's workload on our driver, or of qemu-img bench itself with the same flags: COUNT
 * requests of SIZE bytes, DEPTH in flight, offsets from OFFSET by STEP wrapping at the end of the disk, timed
 * from the first submission to the last completion (open and close excluded, as in qemu-img bench).
 */
final class BenchRunner {
    private BenchRunner() {
    }

    /**
     * The workload, in qemu-img bench's terms; {@code drain}: a flush waits for the requests in flight and holds
     * back the next (qemu-img's default; --no-drain clears it); {@code format}: qcow2 or raw.
     */
    record BenchSpec(int count, int depth, int size, long offset, long step, boolean write, int pattern,
            int flushInterval, boolean drain, String cache, boolean batch, String format) {
        /**
         * The offset of request {@code i}: qemu-img bench's, from OFFSET by STEP, modulo {@code wrap} (the disk size
         * less the request size). The first is OFFSET itself, as qemu-img's: past the end, it fails.
         */
        long offsetOf(int i, long wrap) {
            return i == 0 ? offset : Math.floorMod(offset % wrap + (long) i * step % wrap, wrap);
        }

        BenchSpec withCount(int n) {
            return new BenchSpec(n, depth, size, offset, step, write, pattern, flushInterval, drain, cache, batch,
                    format);
        }
    }

    /**
     * One run's figures; {@code syncs}: every host sync, {@code rangedSyncs}: those of a range among them;
     * {@code uring}: how its requests went through io_uring (all zero if none did).
     */
    record Result(double seconds, long syncs, long rangedSyncs, double cpuSeconds, double p50Micros,
            double p99Micros, UringCounters uring) {
        double iops(int count) {
            return count / seconds;
        }
    }

    /**
     * Runs {@code spec} untimed on a scratch copy of {@code image}, so that the timed run that follows finds the
     * request path JIT-compiled, as a hypervisor's long-lived process does. A JFR profile of a cold run of
     * 30 000 overwrites (0.65 s) showed the C1 and C2 compiler threads using more CPU (0.43 s) than the two
     * carriers running the requests (0.27 s): such a run measures the compiler more than the driver.
     */
    static void warmUp(BenchSpec spec, Path image, OpenOptions options, ExecutionModel model, PrintWriter err)
            throws Exception {
        Path scratch = image.resolveSibling(image.getFileName() + ".warmup");
        try {
            java.nio.file.Files.copy(image, scratch, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            run(spec, scratch, options, model, err);
        } finally {
            java.nio.file.Files.deleteIfExists(scratch);
        }
    }

    /** One timed run on {@code image}: open, submit, drain, close (close is not timed, as in qemu-img bench). */
    static Result run(BenchSpec spec, Path image, OpenOptions options, ExecutionModel model, PrintWriter err)
            throws Exception {
        if (options.direct()) {
            dropCachedPages(image);
        }
        int size = spec.size();
        FileStorage file;
        try {
            file = FileStorage.open(image, options.readOnly(), options.direct(), options.tuning().storage(),
                    LockPermissions.forImage(options.locking(), options.readOnly()));
        } catch (ImageLockedException e) {
            throw e.withContext("Could not open '" + image + "': ");
        }
        if (file.backend() != options.tuning().storage().resolve(options.direct())) {
            err.println("qcow2-loom: these figures are " + file.backend() + "'s, not "
                    + options.tuning().storage().resolve(options.direct()) + "'s (see the log)");
        }
        if (!model.effective().equals(model)) {
            err.println("qcow2-loom: these figures are " + model.effective() + "'s, not " + model + "'s (see the log)");
        }
        CountingStorage storage = new CountingStorage(file);
        Failures failures = new Failures(err);
        long[] latency = new long[spec.count()];
        CountingStorage.Counts syncs;
        double seconds;
        double cpu;
        UringCounters uring;
        try (BlockDevice img = ImageFormat.open(storage, image.toAbsolutePath().getParent(), spec.format(), options);
                AsyncBlockDevice device = model.drive(img)) {
            // qemu-img bench's rule since ff2ab634 (offsets modulo size - bufsize; 7.2 took them modulo size and
            // could run past the end): with an aligned size and buffer, every offset stays aligned. The old
            // modulus here, size - bufsize + 1, made every request after the first wrap unaligned, so each
            // O_DIRECT request went through a bounce buffer and each write through a read-modify-write.
            long wrap = Math.max(1, img.size() - size);
            ByteBuffer data = DirectBuffers.aligned(size);
            for (int i = 0; i < size; i++) {
                data.put(i, (byte) spec.pattern());
            }
            CountingStorage.Counts before = storage.counts();
            long cpuBefore = cpuNanos();
            UringCounters uringBefore = UringCounters.now();
            List<CompletableFuture<Void>> flushes = new ArrayList<>();
            long start = System.nanoTime();
            if (spec.batch() || spec.flushInterval() > 0) {
                // One submitting loop, on a virtual thread as a Loom hypervisor's queue handler would be: it drains
                // for the flushes and batches these workloads need.
                onVirtualThread(() -> submitAll(spec, device, data, latency, wrap, failures, flushes));
            } else {
                runGuests(spec, img, device, model, data, latency, wrap, failures);
            }
            seconds = (System.nanoTime() - start) / 1e9;
            cpu = (cpuNanos() - cpuBefore) / 1e9;
            // qemu-img bench's clock stops at the last request's completion; the flushes still in flight then are
            // waited for as it closes the image.
            for (CompletableFuture<Void> f : flushes) {
                f.exceptionally(e -> null).join();
            }
            uring = UringCounters.now().since(uringBefore);
            syncs = storage.counts().minus(before);
        }
        failures.throwIfAny(spec.count());
        long[] sorted = latency.clone();
        Arrays.sort(sorted);
        int count = spec.count();
        double p50 = count == 0 ? 0 : sorted[count / 2] / 1e3; // -c 0 runs nothing, as qemu-img's does
        double p99 = count == 0 ? 0 : sorted[(int) (count * 0.99)] / 1e3;
        return new Result(seconds, syncs.flushes(), syncs.rangeFlushes(), cpu, p50, p99, uring);
    }

    /**
     * DEPTH guests, each a virtual thread that issues its next request as soon as its last completes; request i
     * goes to qemu-img bench's i-th offset. Under the virtual model a guest runs the driver's code itself (a
     * virtual thread per request in flight, no hand-off), under loop:N on the event loops; under pool:N it hands
     * each request to the pool and waits for it, as the caller of a thread-pool driver does.
     */
    private static void runGuests(BenchSpec spec, BlockDevice img, AsyncBlockDevice device, ExecutionModel model,
            ByteBuffer data, long[] latency, long wrap, Failures failures) throws InterruptedException {
        AtomicInteger next = new AtomicInteger();
        List<Thread> guests = new ArrayList<>();
        ThreadFactory threads = model.requestThreads("qcow2-loom-bench-guest");
        for (int g = 0; g < spec.depth(); g++) {
            guests.add(threads.newThread(() -> {
                ByteBuffer buf = spec.write() ? null : DirectBuffers.aligned(spec.size());
                // One clock read a request: a request's end starts the guest's next one, whose latency so takes in
                // the few instructions between them (clock reads were 3% of a loop's CPU at depth 64).
                long t0 = System.nanoTime();
                for (int i; (i = next.getAndIncrement()) < spec.count(); ) {
                    long off = spec.offsetOf(i, wrap);
                    try {
                        ByteBuffer b = spec.write() ? data.duplicate() : buf.clear();
                        if (model.runsOnCaller()) {
                            if (spec.write()) {
                                img.write(off, b);
                            } else {
                                img.read(off, b);
                            }
                        } else {
                            (spec.write() ? device.write(off, b) : device.read(off, b)).join();
                        }
                    } catch (IOException | RuntimeException e) {
                        failures.add(e);
                    }
                    long end = System.nanoTime();
                    latency[i] = end - t0;
                    t0 = end;
                }
            }));
        }
        for (Thread t : guests) {
            t.start();
        }
        for (Thread t : guests) {
            t.join();
        }
    }

    /**
     * Submits the workload's requests, DEPTH in flight, as qemu-img bench does, and its flushes where qemu-img's
     * bench_cb makes them: as a request completes with a multiple of N requests not yet issued (counting from the
     * end, so the last completions flush too). Draining, a flush waits for the requests in flight and holds the next
     * back; with --no-drain it goes beside them, and each of the last completions makes one. Flushes that hold
     * nothing back are left in {@code flushes}, for the caller to wait for once the clock has stopped.
     */
    private static void submitAll(BenchSpec spec, AsyncBlockDevice device, ByteBuffer data, long[] latency,
            long wrap, Failures failures, List<CompletableFuture<Void>> flushes) throws Exception {
        Semaphore slots = new Semaphore(spec.depth());
        // One read buffer per slot, reused as qemu-img bench does: allocation is not what is measured.
        ConcurrentLinkedQueue<ByteBuffer> buffers = new ConcurrentLinkedQueue<>();
        for (int i = 0; i < spec.depth(); i++) {
            buffers.add(DirectBuffers.aligned(spec.size()));
        }
        if (spec.batch() && spec.write()) {
            // Batch submit: DEPTH writes at a time, their clusters reserved in one refcount update.
            BatchSubmitter batches = new BatchSubmitter(device);
            for (int i = 0; i < spec.count(); ) {
                List<BatchSubmitter.Write> batch = new ArrayList<>();
                long t0 = System.nanoTime();
                int first = i;
                for (; i < spec.count() && batch.size() < spec.depth(); i++) {
                    batch.add(new BatchSubmitter.Write(spec.offsetOf(i, wrap), data.duplicate()));
                }
                batches.submit(batch).join();
                Arrays.fill(latency, first, i, System.nanoTime() - t0);
            }
        }
        int interval = spec.flushInterval();
        for (int i = spec.batch() && spec.write() ? spec.count() : 0; i < spec.count(); i++) {
            // Request i is issued as one completes (but for the first DEPTH), with count - i not yet issued.
            if (interval > 0 && i >= spec.depth() && (spec.count() - i) % interval == 0) {
                if (spec.drain()) {
                    slots.acquire(spec.depth());
                    device.flush().join(); // a failure fails the run, as qemu-img's "Failed request"
                    slots.release(spec.depth());
                } else {
                    flushes.add(undrainedFlush(device, failures));
                }
            }
            slots.acquire();
            int n = i;
            long off = spec.offsetOf(i, wrap);
            long t0 = System.nanoTime();
            ByteBuffer buf = spec.write() ? data.duplicate() : buffers.poll().clear();
            (spec.write() ? device.write(off, buf) : device.read(off, buf)).whenComplete((v, e) -> {
                latency[n] = System.nanoTime() - t0;
                if (!spec.write()) {
                    buffers.add(buf);
                }
                slots.release();
                if (e != null) {
                    failures.add(e.getCause() != null ? e.getCause() : e);
                }
            });
        }
        if (interval > 0 && spec.drain()) {
            slots.acquire(spec.depth());
            flushes.add(device.flush());
            return;
        }
        // The last completions, all with nothing left to issue: without draining, each makes a flush.
        for (int done = 0; done < Math.min(spec.count(), spec.depth()); done++) {
            slots.acquire();
            if (interval > 0) {
                flushes.add(undrainedFlush(device, failures));
            }
        }
    }

    /** A flush beside the requests in flight (qemu-img's bench_undrained_flush_cb, in its words on failure). */
    private static CompletableFuture<Void> undrainedFlush(AsyncBlockDevice device, Failures failures) {
        return device.flush().whenComplete((v, e) -> {
            if (e != null) {
                failures.flushFailed(e.getCause() != null ? e.getCause() : e);
            }
        });
    }

    private interface Body {
        void run() throws Exception;
    }

    private static void onVirtualThread(Body body) throws Exception {
        Exception[] failure = new Exception[1];
        Thread t = Thread.ofVirtual().name("qcow2-loom-bench").start(() -> {
            try {
                body.run();
            } catch (Exception e) {
                failure[0] = e;
            }
        });
        t.join();
        if (failure[0] != null) {
            throw failure[0];
        }
    }

    /**
     * A run's failed requests and flushes beside them: the first is printed in qemu-img bench's words, all counted,
     * and a run with any fails, as qemu-img's does (it exits at the first). A failed batch, or a flush that drained,
     * of {@code submitAll} fails the run at once.
     */
    private static final class Failures {
        private final PrintWriter err;
        private final AtomicInteger count = new AtomicInteger();
        private final AtomicInteger flushes = new AtomicInteger();

        Failures(PrintWriter err) {
            this.err = err;
        }

        void add(Throwable e) {
            if (count.getAndIncrement() == 0 && flushes.get() == 0) {
                err.println("qcow2-loom: Failed request: " + Main.message(e));
            }
        }

        void flushFailed(Throwable e) {
            if (flushes.getAndIncrement() == 0 && count.get() == 0) {
                err.println("qcow2-loom: Failed flush request: " + Main.message(e));
            }
        }

        void throwIfAny(int requests) throws IOException {
            int n = count.get();
            if (n > 0) {
                throw new IOException(n + " of " + requests + " requests failed");
            }
            if (flushes.get() > 0) {
                throw new IOException(flushes.get() + " flushes failed");
            }
        }
    }

    private static long cpuNanos() {
        return ProcessHandle.current().info().totalCpuDuration().map(java.time.Duration::toNanos).orElse(0L);
    }

    /** One run of qemu-img bench: its "Run completed in X seconds" and the CPU time the process used. */
    record QemuResult(double seconds, double cpuSeconds) {
    }

    private static final Java22Method DROP_PAGES = Java22Method.find(MethodHandles.lookup(),
            "io.github.qcowloom.os.FileCache", "drop", MethodType.methodType(void.class, Path.class),
            "dropping an image's cached pages");

    /**
     * Writes back and drops the page-cache pages of an image an O_DIRECT run is about to use ({@code FileCache}): a
     * copy made for the run, or the image a warm-up copied, is in the page cache, and an O_DIRECT write to such a
     * range goes to io_uring's worker threads, not inline, for ours and qemu-img alike; fio's file, and a
     * cache=none guest's image, hold none. On Java 21, and where the native layer cannot run, the pages stay.
     */
    static void dropCachedPages(Path image) throws IOException {
        if (DROP_PAGES.handle() == null) {
            return;
        }
        try {
            DROP_PAGES.handle().invokeExact(image);
        } catch (UnsupportedOperationException e) {
            // not Linux on amd64 or aarch64: nothing to drop them with
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** qemu-img bench with the same flags; returns its "Run completed in X seconds". */
    static double runQemu(BenchSpec spec, Path image) throws IOException, InterruptedException {
        return runQemu(spec, image, null, null).seconds();
    }

    /**
     * qemu-img bench with the same flags and, unless {@code aio} is null, {@code -i aio} (native, io_uring or
     * threads; qemu's default is threads). The CPU time is the child's whole life, start and image open included
     * (as ours is not), so it overstates qemu-img's per-request cost slightly at small counts. {@code named}: the
     * options the image was given by ({@code --image-opts}), or null; qemu-img gets them for {@code image}.
     */
    static QemuResult runQemu(BenchSpec spec, Path image, String aio, ImageOpts named)
            throws IOException, InterruptedException {
        // O_DIRECT as qemu-img's open decides it: the image's options over -t, as ours (see run).
        if (named == null ? CacheMode.direct(spec.cache()) : named.direct(CacheMode.direct(spec.cache()))) {
            dropCachedPages(image);
        }
        List<String> cmd = qemuCommand(spec, image, aio, named);
        double cpuBefore = childrenCpuSeconds();
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String text = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        int code = p.waitFor();
        // waitFor returns once the JDK's reaper thread has reaped the child, which is when the kernel adds the
        // child's CPU time to this process's cutime/cstime: read after it, they include the whole run.
        double cpu = childrenCpuSeconds() - cpuBefore;
        if (code != 0) {
            throw new IOException("qemu-img bench failed: " + text.trim());
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("Run completed in ([0-9.]+) seconds").matcher(text);
        if (!m.find()) {
            throw new IOException("unexpected qemu-img bench output: " + text.trim());
        }
        return new QemuResult(Double.parseDouble(m.group(1)), cpu);
    }

    /**
     * Whether qemu-img bench accepts {@code -i aio} with this cache mode on this host and image: null if it does,
     * else qemu-img's message (an io_uring that the kernel or the build lacks is refused when the image opens).
     * Runs one read request, so the image is not changed.
     */
    static String probeQemuAio(BenchSpec spec, Path image, String aio, ImageOpts named) throws InterruptedException {
        BenchSpec one = new BenchSpec(1, 1, spec.size(), spec.offset(), spec.step(), false, 0, 0, true,
                spec.cache(), false, spec.format());
        try {
            runQemu(one, image, aio, named);
            return null;
        } catch (IOException e) {
            return e.getMessage();
        }
    }

    private static List<String> qemuCommand(BenchSpec spec, Path image, String aio, ImageOpts named) {
        List<String> cmd = new ArrayList<>(List.of("qemu-img", "bench", "-c", String.valueOf(spec.count()),
                "-d", String.valueOf(spec.depth()), "-s", String.valueOf(spec.size()), "-o",
                String.valueOf(spec.offset()), "-S", String.valueOf(spec.step()), "-t", spec.cache()));
        if (aio != null) {
            cmd.add("-i");
            cmd.add(aio);
        }
        if (spec.write()) {
            cmd.add("-w");
            cmd.add("--pattern=" + spec.pattern());
        }
        if (spec.flushInterval() > 0) {
            cmd.add("--flush-interval=" + spec.flushInterval());
        }
        if (!spec.drain()) {
            cmd.add("--no-drain");
        }
        if (named != null && !named.options().isEmpty()) {
            cmd.addAll(List.of("--image-opts", named.naming(image)));
        } else {
            cmd.addAll(List.of("-f", spec.format(), image.toString()));
        }
        return cmd;
    }

    /**
     * CPU seconds (user + system) of this process's reaped children: fields 16 and 17 (cutime, cstime) of
     * /proc/self/stat, in clock ticks of 1/100 s (USER_HZ, fixed at 100 in Linux's user ABI), so 10 ms
     * resolution. NaN where there is no /proc.
     */
    static double childrenCpuSeconds() {
        try {
            return childrenCpuSeconds(java.nio.file.Files.readString(Path.of("/proc/self/stat")));
        } catch (IOException | RuntimeException e) {
            return Double.NaN;
        }
    }

    static double childrenCpuSeconds(String stat) {
        // Field 2, the command name in parentheses, may hold spaces and parentheses: count from the last ')'.
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
        // f[0] is field 3 (state), so field N is f[N - 3].
        return (Long.parseLong(f[16 - 3]) + Long.parseLong(f[17 - 3])) / 100.0;
    }
}
