package io.github.qcowloom.bench;

import io.github.qcowloom.api.AsyncBlockDevice;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
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

/**
 * Whole 4 KiB requests on an allocated 256 MiB image: a batch of {@code depth} concurrent reads or overwrites per
 * invocation, driven by a virtual thread per request or by a pool of 64 platform threads; and allocating writes, each
 * into a new cluster of an empty 64 GiB image made for every iteration (the allocator's path: the pool, new
 * clusters, links).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
@OperationsPerInvocation(256)
public class RequestBenchmark {
    private static final long SIZE = 256L << 20;
    private static final int BATCH = 256;
    private static final long FRESH_SIZE = 64L << 30;
    private static final long CLUSTER = 65536;

    @Param({"1", "16", "64", "256"})
    public int depth;

    @Param({"virtual", "pool:64"})
    public String exec;

    private Path file;
    private Qcow2Image image;
    private AsyncBlockDevice device;
    private ByteBuffer[] buffers;
    private long offset;
    private Path freshFile;
    private Qcow2Image freshImage;
    private AsyncBlockDevice freshDevice;
    private long freshOffset;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        file = Files.createTempFile("jmh", ".qcow2");
        ImageCreator.create(file, CreateOptions.defaults(SIZE).withPreallocation("metadata"));
        image = Qcow2Image.open(file, OpenOptions.readWriteDefaults());
        device = ExecutionModel.parse(exec).drive(image);
        buffers = new ByteBuffer[depth];
        for (int i = 0; i < depth; i++) {
            buffers[i] = ByteBuffer.allocateDirect(4096);
        }
    }

    @Setup(Level.Iteration)
    public void freshImage() throws Exception {
        freshFile = Files.createTempFile("jmh-fresh", ".qcow2");
        ImageCreator.create(freshFile, CreateOptions.defaults(FRESH_SIZE));
        freshImage = Qcow2Image.open(freshFile, OpenOptions.readWriteDefaults());
        freshDevice = ExecutionModel.parse(exec).drive(freshImage);
        freshOffset = 0;
    }

    @TearDown(Level.Iteration)
    public void dropFreshImage() throws Exception {
        freshDevice.close();
        freshImage.close();
        Files.deleteIfExists(freshFile);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        device.close();
        image.close();
        Files.deleteIfExists(file);
    }

    /** {@code BATCH} requests, {@code depth} in flight at a time, at offsets that walk the disk 4 KiB apart. */
    private void run(boolean write) {
        CompletableFuture<?>[] inFlight = new CompletableFuture<?>[depth];
        for (int i = 0; i < BATCH; i++) {
            int slot = i % depth;
            if (inFlight[slot] != null) {
                inFlight[slot].join();
            }
            ByteBuffer b = buffers[slot].clear();
            offset = (offset + 4096) % SIZE;
            inFlight[slot] = write ? device.write(offset, b) : device.read(offset, b);
        }
        joinAll(inFlight);
    }

    /** {@code BATCH} writes to the fresh image, {@code depth} in flight at a time, each into a cluster of its own. */
    private void allocate() {
        CompletableFuture<?>[] inFlight = new CompletableFuture<?>[depth];
        for (int i = 0; i < BATCH; i++) {
            int slot = i % depth;
            if (inFlight[slot] != null) {
                inFlight[slot].join();
            }
            freshOffset = (freshOffset + CLUSTER) % FRESH_SIZE;
            inFlight[slot] = freshDevice.write(freshOffset, buffers[slot].clear());
        }
        joinAll(inFlight);
    }

    private static void joinAll(CompletableFuture<?>[] inFlight) {
        CompletableFuture.allOf(java.util.Arrays.stream(inFlight).filter(f -> f != null)
                .toArray(CompletableFuture[]::new)).join();
    }

    @Benchmark
    public void read4k() {
        run(false);
    }

    @Benchmark
    public void overwrite4k() {
        run(true);
    }

    @Benchmark
    public void allocate4k() {
        allocate();
    }
}
