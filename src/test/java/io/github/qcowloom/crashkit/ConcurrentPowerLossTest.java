package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.alloc.RefcountComparison;
import io.github.qcowloom.alloc.RefcountTable;
import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.cache.TableCache;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Power loss under real concurrency: six platform threads write, discard and flush over a {@link CrashSimStorage}
 * with one-slice caches, so that new L2 tables and refblocks are allocated (with ranged syncs) while flushes write
 * back, and every crash state the kit derives is checked: no refcount below its references, no corrupt bit, and
 * after the repairing open every sector holds zeroes or data that some write put in that very sector. The seeded
 * explorer ({@code simulation}) replays its schedules but models a process kill; this one takes the threads'
 * real interleavings, stirred by random pauses around the storage's writes and syncs, so a failure names its seed
 * and crash state but may not replay.
 */
class ConcurrentPowerLossTest {
    private static final int CLUSTER = 4096;
    private static final long SPAN = (CLUSTER / 8L) * CLUSTER; // one L2 table's guest span
    private static final int TABLES = 12;
    private static final int HOT = 3;

    @TempDir
    Path dir;

    @ParameterizedTest
    @CsvSource({"11,false,64", "12,true,64", "13,true,64"})
    void concurrentCrashStatesAreConsistent(long seed, boolean pool, int refcountBits) throws Exception {
        Path file = dir.resolve("a.qcow2");
        ImageCreator.create(file, CreateOptions.defaults(TABLES * SPAN).withClusterSize(CLUSTER)
                .withRefcountBits(refcountBits));
        CrashSimStorage sim = new CrashSimStorage(Files.readAllBytes(file));
        ImageOptions tuning = ImageOptions.defaults().withL2CacheBytes(CLUSTER).withRefblockCacheBytes(CLUSTER)
                .withPool(pool).withPoolThresholds(1, 4, 16);
        Set<Long>[] written = writtenSets();
        AtomicInteger ids = new AtomicInteger(1);
        Qcow2Image img = Qcow2Image.open(new Jitter(sim, seed), dir,
                OpenOptions.readWriteDefaults().withTuning(tuning));
        List<Thread> threads = new ArrayList<>();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < 6; t++) {
            Random r = new Random(seed * 97 + t);
            int me = t;
            threads.add(Thread.ofPlatform().start(() -> {
                try {
                    for (int i = 0; i < 60; i++) {
                        int op = r.nextInt(10);
                        long cluster = (long) r.nextInt(TABLES) * (SPAN / CLUSTER) + r.nextInt(HOT);
                        if (me >= 4 && op < 3) {
                            img.flush();
                        } else if (op == 9) {
                            img.discard(cluster * CLUSTER, CLUSTER);
                        } else {
                            int sectors = 1 + r.nextInt(CLUSTER / 512 * 2 - 1);
                            long sector = cluster * (CLUSTER / 512) + r.nextInt(CLUSTER / 512);
                            int id = ids.getAndIncrement();
                            byte[] data = new byte[sectors * 512];
                            for (int s = 0; s < sectors; s++) {
                                long sec = sector + s;
                                written[(int) sec].add((long) id);
                                System.arraycopy(GuestHistory.pattern(id, sec), 0, data, s * 512, 512);
                            }
                            img.write(sector * 512, ByteBuffer.wrap(data)); // a hot cluster: never past the end
                        }
                    }
                } catch (Throwable e) {
                    errors.add(e);
                }
            }));
        }
        for (Thread t : threads) {
            t.join();
        }
        if (!errors.isEmpty()) {
            throw new AssertionError(errors.get(0));
        }
        Iterator<CrashState> states = sim.crashStates(CrashOptions.defaults().withSeed(seed).withEveryEpoch(true)
                .withPowersetMax(6).withRandomSubsets(8)).iterator();
        img.close();
        int n = 0;
        while (states.hasNext()) {
            CrashState s = states.next();
            String problem = check(s, written);
            n++;
            if (problem != null) {
                fail("state " + n + " " + s.description() + ": " + problem);
            }
        }
        assertTrue(n > 100, "crash states checked: " + n);
    }

    /** Parks a little around each write and sync, so that requests, flushes and the pool's refills interleave. */
    private static final class Jitter extends ForwardingStorage {
        private final Random random;

        Jitter(Storage inner, long seed) {
            super(inner);
            this.random = new Random(seed);
        }

        private void pause() {
            int n;
            synchronized (random) {
                n = random.nextInt(300);
            }
            LockSupport.parkNanos(n * 1000L);
        }

        @Override
        public void write(ByteBuffer src, long position) throws IOException {
            pause();
            super.write(src, position);
            pause();
        }

        @Override
        public void flush() throws IOException {
            pause();
            super.flush();
        }

        @Override
        public void flushRange(long position, long length) throws IOException {
            pause();
            super.flushRange(position, length);
            pause();
        }
    }

    @SuppressWarnings("unchecked")
    private static Set<Long>[] writtenSets() {
        Set<Long>[] sets = new Set[(int) (TABLES * SPAN / 512)];
        for (int i = 0; i < sets.length; i++) {
            sets[i] = ConcurrentHashMap.newKeySet();
        }
        return sets;
    }

    private String check(CrashState state, Set<Long>[] written) throws Exception {
        MemoryStorage raw = MemoryStorage.readOnlyCopy(state.image());
        Header header = ImageMetadata.readHeader(raw);
        if (header.corrupt()) {
            return "corrupt bit";
        }
        ReferenceCount refs = ReferenceCount.compute(raw, header, ImageMetadata.readSnapshots(raw, header));
        RefcountComparison cmp = RefcountComparison.compare(refs,
                new RefcountTable(raw, header, new TableCache(raw, 4096, 64)));
        if (!refs.problems().isEmpty()) {
            return "metadata problems " + refs.problems();
        }
        if (!cmp.corruptions().isEmpty()) {
            return "refcount below references (dirty=" + header.dirty() + "): "
                    + cmp.corruptions().stream().map(RefcountComparison.Mismatch::message).limit(5).toList();
        }
        MemoryStorage repaired = new MemoryStorage(state.image());
        try (Qcow2Image img = Qcow2Image.open(repaired, dir, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] buf = new byte[CLUSTER];
            for (int t = 0; t < TABLES; t++) {
                for (int h = 0; h < HOT + 1; h++) {
                    long cluster = t * (SPAN / CLUSTER) + h;
                    img.read(cluster * CLUSTER, ByteBuffer.wrap(buf));
                    for (int s = 0; s < CLUSTER / 512; s++) {
                        long sec = cluster * (CLUSTER / 512) + s;
                        byte[] got = Arrays.copyOfRange(buf, s * 512, s * 512 + 512);
                        int id = GuestHistory.idOf(got, sec);
                        if (id < 0 || (id > 0 && !written[(int) sec].contains((long) id))) {
                            return "sector " + sec + " holds " + GuestHistory.identify(got, sec);
                        }
                    }
                }
            }
        }
        return null;
    }
}
