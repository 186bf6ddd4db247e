package io.github.qcowloom.storage;

import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.cli.UringCounters;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.atomic.LongAdder;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;

/**
 * 4 KiB positional reads of {@link FileStorage} through io_uring and through FileChannel, buffered (page-cache
 * hits: the cost of the call itself) and with O_DIRECT (the device's latency too), at random 4 KiB-aligned
 * offsets of a 64 MiB file written once per trial under {@code target/} (a real file system: tmpfs refuses
 * O_DIRECT, and is refused here).
 *
 * <ul>
 *   <li>{@link #read4kDepth1}: one request at a time from JMH's (platform) thread, average time per request:
 *       the submit + complete cost of one request.
 *   <li>{@link #read4kConcurrent}: {@code threads} virtual threads started per invocation, each reading its
 *       share of {@value #READS_PER_INVOCATION} reads in a loop, joined; requests per second. With io_uring the
 *       SQEs of the threads in flight go to the kernel in one {@code io_uring_enter}; with FileChannel each
 *       read is a pread that holds a carrier, so at most as many run as there are carriers. Starting and
 *       joining the threads, and the tail where fewer than {@code threads} are left, are in the figure: 64
 *       virtual threads start in tens of microseconds, against milliseconds of reads per invocation. (JMH's
 *       own {@code @Threads} would not do: platform threads, and not a {@code @Param}.) {@code threads=1} is
 *       the depth-1 figure again, from a virtual thread.
 * </ul>
 *
 * <p>The setup fails if io_uring was asked for and {@link FileStorage#backend()} fell back to FileChannel, so
 * that FileChannel figures never pass for io_uring ones. At the end of an io_uring trial the teardown prints the
 * queue's line ({@link UringCounters}, over warm-up and measurement): how many requests went through the ring
 * and how many per submitting {@code io_uring_enter} (above 1 means requests shared system calls), where their
 * time went, and the completion thread's waits.
 *
 * <pre>./mvnw -B -ntp -Pjmh -Djmh.args="StorageBackendBenchmark -f 1 -wi 2 -w 1s -i 3 -r 1s"</pre>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@State(Scope.Benchmark)
@Threads(1)
public class StorageBackendBenchmark {
    private static final int FILE_SIZE = 64 << 20;
    private static final int BLOCK = 4096;
    private static final int BLOCKS = FILE_SIZE / BLOCK;
    static final int READS_PER_INVOCATION = 4096;

    @Param({"io_uring", "filechannel"})
    public String backend;

    @Param({"buffered", "direct"})
    public String mode;

    private Path dir;
    private FileStorage storage;
    private ByteBuffer buffer;
    // Reads made by the benchmarks, warm-up included, and the queue's counts when the trial began.
    private final LongAdder requests = new LongAdder();
    private UringCounters queueBefore;

    /** The concurrent benchmark's own parameter, so that the depth-1 one is not run once per thread count. */
    @State(Scope.Benchmark)
    public static class Readers {
        @Param({"1", "16", "64"})
        public int threads;

        ByteBuffer[] buffers;

        @Setup(Level.Trial)
        public void setUp() {
            if (READS_PER_INVOCATION % threads != 0) {
                throw new IllegalArgumentException("threads must divide " + READS_PER_INVOCATION);
            }
            buffers = new ByteBuffer[threads];
            for (int i = 0; i < threads; i++) {
                buffers[i] = alignedBuffer(BLOCK);
            }
        }
    }

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        StorageBackend wanted = StorageBackend.parse(backend);
        boolean direct = switch (mode) {
            case "buffered" -> false;
            case "direct" -> true;
            default -> throw new IllegalArgumentException("mode must be buffered or direct, not " + mode);
        };
        Path target = Path.of(System.getProperty("user.dir"), "target");
        Files.createDirectories(target);
        dir = Files.createTempDirectory(target, "jmh-storage");
        try {
            String fsType = Files.getFileStore(dir).type();
            if (fsType.equals("tmpfs")) {
                throw new IllegalStateException(dir + " is on tmpfs: O_DIRECT figures need a real file system");
            }
            Path file = dir.resolve("data");
            writeFile(file);
            storage = FileStorage.open(file, true, direct, wanted);
            if (storage.backend() != wanted) {
                throw new IllegalStateException("asked for " + wanted + " but FileStorage runs on "
                        + storage.backend() + " (see the fallback warning above): these would not be " + wanted
                        + " figures");
            }
            buffer = alignedBuffer(BLOCK);
            if (wanted == StorageBackend.IO_URING) {
                queueBefore = UringCounters.now();
            }
        } catch (Exception | Error e) {
            closeAndDelete(); // JMH skips the teardown of a failed setup: the 64 MiB file would stay
            throw e;
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        try {
            if (queueBefore != null && requests.sum() > 0) {
                UringCounters queue = UringCounters.now().since(queueBefore);
                System.out.printf("%n%s; completion thread's waits: %d%n", queue.describe(), queue.waitCalls());
            }
        } finally {
            closeAndDelete();
        }
    }

    private void closeAndDelete() throws IOException {
        try {
            if (storage != null) {
                storage.close();
            }
        } finally {
            Files.deleteIfExists(dir.resolve("data"));
            Files.deleteIfExists(dir);
        }
    }

    /** One 4 KiB read at a random aligned offset, from the benchmark's thread. */
    @Benchmark
    public int read4kDepth1() throws IOException {
        requests.increment();
        return storage.read(buffer.clear(), randomOffset());
    }

    /** {@value #READS_PER_INVOCATION} 4 KiB reads, shared out among {@code threads} virtual threads. */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    @OperationsPerInvocation(READS_PER_INVOCATION)
    public void read4kConcurrent(Readers readers) throws Exception {
        int each = READS_PER_INVOCATION / readers.threads;
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread[] threads = new Thread[readers.threads];
        for (int t = 0; t < threads.length; t++) {
            ByteBuffer b = readers.buffers[t];
            threads[t] = Thread.ofVirtual().start(() -> {
                try {
                    for (int i = 0; i < each; i++) {
                        if (storage.read(b.clear(), randomOffset()) != BLOCK) {
                            throw new IOException("short read");
                        }
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            });
        }
        for (Thread t : threads) {
            t.join();
        }
        requests.add(READS_PER_INVOCATION);
        if (failure.get() != null) {
            throw new IllegalStateException("a reader failed", failure.get());
        }
    }

    private static long randomOffset() {
        return (long) ThreadLocalRandom.current().nextInt(BLOCKS) * BLOCK;
    }

    static ByteBuffer alignedBuffer(int n) {
        return ByteBuffer.allocateDirect(n + BLOCK).alignedSlice(BLOCK).slice(0, n);
    }

    /** 64 MiB of non-zero bytes, made durable so that O_DIRECT reads find them on the device. */
    private static void writeFile(Path file) throws IOException {
        ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
        ThreadLocalRandom random = ThreadLocalRandom.current();
        while (chunk.hasRemaining()) {
            chunk.putLong(random.nextLong());
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            for (long at = 0; at < FILE_SIZE; at += chunk.capacity()) {
                chunk.clear();
                while (chunk.hasRemaining()) {
                    ch.write(chunk, at + chunk.position());
                }
            }
            ch.force(false);
        }
    }
}
