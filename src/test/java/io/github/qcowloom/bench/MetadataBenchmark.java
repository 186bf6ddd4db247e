package io.github.qcowloom.bench;

import io.github.qcowloom.alloc.ClusterPool;
import io.github.qcowloom.alloc.ClusterSource;
import io.github.qcowloom.alloc.HostCluster;
import io.github.qcowloom.alloc.HostOffset;
import io.github.qcowloom.alloc.NewCluster;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.storage.MemoryStorage;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/** Micro-benchmarks of the metadata paths: slice-cache hits and misses, a refcount update, a pool take. */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@State(Scope.Benchmark)
public class MetadataBenchmark {
    private static final HostCluster CLUSTER_3 = new HostCluster(3);
    private TableCache smallCache;
    private TableCache bigCache;
    private RefcountTable refcounts;
    private ClusterPool pool;
    private long next;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        Path file = Files.createTempFile("jmh", ".qcow2");
        ImageCreator.create(file, CreateOptions.defaults(1L << 30));
        MemoryStorage storage = new MemoryStorage(Files.readAllBytes(file));
        Files.delete(file);
        // 1 MiB of "table" at the end of the image: 256 slices; the small cache holds 16 of them.
        storage.setLength(storage.size() + (1 << 20));
        smallCache = new TableCache(storage, 4096, 16);
        bigCache = new TableCache(storage, 4096, 1024);
        byte[] first = new byte[65536];
        storage.readFully(ByteBuffer.wrap(first), 0);
        Header header = Header.parse(first, storage.size());
        refcounts = new RefcountTable(storage, header, new TableCache(storage, 4096, 64));
        AtomicLong clusters = new AtomicLong(1L << 20);
        pool = new ClusterPool(new ClusterSource() {
            @Override
            public List<NewCluster> allocate(int n) {
                List<NewCluster> out = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    out.add(new NewCluster(new HostOffset(clusters.getAndAdd(65536)), true));
                }
                return out;
            }

            @Override
            public void release(List<NewCluster> clusters) {
            }

            @Override
            public void idle() {
            }
        }, 64, 256, 4096);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        pool.close();
    }

    /** An L2 lookup that hits: the same slice every time. */
    @Benchmark
    public long l2SliceHit() throws Exception {
        return bigCache.get(0).getLong(8);
    }

    /** An L2 lookup that misses: 256 slices through a 16-slice cache, each miss a read. */
    @Benchmark
    public long l2SliceMiss() throws Exception {
        next = (next + 1) & 255;
        return smallCache.get(65536L * 8 + next * 4096).getLong(8);
    }

    /** One refcount increment and decrement in a cached refblock slice. */
    @Benchmark
    public long refcountUpdate() throws Exception {
        refcounts.update(CLUSTER_3, 1);
        refcounts.update(CLUSTER_3, -1);
        return refcounts.get(CLUSTER_3);
    }

    /** Taking a preallocated cluster from the pool (refilled by its allocator thread). */
    @Benchmark
    public Optional<NewCluster> poolTake() throws java.io.IOException {
        return pool.take();
    }
}
