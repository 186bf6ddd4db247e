package io.github.qcowloom.simulation;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.api.RefcountOverflowException;
import io.github.qcowloom.check.CheckResult;
import io.github.qcowloom.check.ImageChecker;
import io.github.qcowloom.format.Header;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.ImageMetadata;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.snapshot.SnapshotNotFoundException;
import io.github.qcowloom.snapshot.Snapshots;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.ForwardingStorage;
import io.github.qcowloom.storage.Storage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;

/**
 * A concurrent workload for the interleaving explorer: an image layout with deliberately tiny caches, and a list of
 * requests per guest thread. {@link #run} runs it on a {@link SimScheduler} and throws {@link AssertionError} with
 * the operation trace when a read sees what no atomic disk could show ({@link SectorHistory}), when a request
 * fails with an error it may not raise, when our check finds corruption or leaks after close, or when a crash
 * state taken at a random flush is inconsistent (corrupt under a clean header, or not repaired by the next open).
 */
record ConcurrentWorkload(Layout layout, List<List<Op>> guests) {
    private static final Path DIR = tempDir();
    /** Fresh images by layout, the 64 most recent (a 64 KiB-cluster image holds a few hundred KiB). */
    private static final Map<Layout, byte[]> TEMPLATES = java.util.Collections.synchronizedMap(
            new java.util.LinkedHashMap<>(16, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<Layout, byte[]> eldest) {
                    return size() > 64;
                }
            });
    /** A snapshot name some guest is creating. */
    private static final Object CLAIMED = new Object();

    /**
     * The image: {@code clusterBits} 9–16; requests go to the first {@code hot} clusters of each of {@code l2Tables}
     * L2 tables' ranges (so that tables are allocated, copied and evicted while data is), and the virtual size ends
     * with the last table's hot clusters; extended L2, lazy refcounts, the pool, a raw backing file with
     * {@link SectorHistory#BACKING}'s pattern, and the caches in slices.
     */
    record Layout(int clusterBits, int l2Tables, int hot, boolean extendedL2, boolean lazy, boolean pool,
            boolean backing, int l2Slices, int refblockSlices, int delayPercent) {
        long clusterSize() {
            return 1L << clusterBits;
        }

        /** Clusters one L2 table maps. */
        long clustersPerTable() {
            return clusterSize() / (extendedL2 ? 16 : 8);
        }

        /** Guest cluster {@code i} of the hot ones ({@code 0 <= i < l2Tables * hot}). */
        long hotCluster(int i) {
            return (i / hot) * clustersPerTable() + i % hot;
        }

        long size() {
            return (hotCluster(l2Tables * hot - 1) + 1) * clusterSize();
        }

        int sliceSize() {
            return (int) Math.min(4096, clusterSize());
        }
    }

    /** What a request does; FAST_ZEROES is a zero write that writes no zero bytes, CACHE a copy-on-read prefetch. */
    enum Kind { WRITE, READ, DISCARD, ZEROES, FAST_ZEROES, CACHE, COMPRESSED, FLUSH, SNAPSHOT, APPLY, DELETE, SHRINK,
        GROW }

    /** One request: sectors {@code [sector, sector + count)}; {@code snap} names a snapshot for the three snapshot kinds. */
    record Op(Kind kind, long sector, int count, int snap) {
        @Override
        public String toString() {
            return switch (kind) {
                case FLUSH -> "flush";
                case SNAPSHOT, APPLY, DELETE -> kind.name().toLowerCase() + " s" + snap;
                case SHRINK, GROW -> kind.name().toLowerCase() + " to " + sector + " sectors";
                default -> kind.name().toLowerCase() + " " + sector + "+" + count;
            };
        }
    }

    private static Path tempDir() {
        try {
            Path d = Files.createTempDirectory("qcowloom-sim");
            d.toFile().deleteOnExit(); // registered first, so deleted last: after the files in it
            return d;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The freshly created image for {@code layout}, made once by our create (which equals qemu-img's). */
    static byte[] template(Layout layout) {
        return TEMPLATES.computeIfAbsent(layout, l -> {
            try {
                Path img = Files.createTempFile(DIR, "template", ".qcow2");
                CreateOptions o = CreateOptions.defaults(l.size()).withClusterSize((int) l.clusterSize())
                        .withExtendedL2(l.extendedL2()).withLazyRefcounts(l.lazy());
                if (l.backing()) {
                    o = o.withBacking(backingFile(l).toString(), "raw");
                }
                Files.delete(img);
                ImageCreator.create(img, o);
                byte[] bytes = Files.readAllBytes(img);
                Files.delete(img);
                return bytes;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /**
     * A sparse raw backing file for {@code l}: the {@link SectorHistory#BACKING} pattern where requests can reach
     * (each table's hot clusters and the two after them, as a request is at most two clusters long), a hole
     * elsewhere; a virtual disk of 64 KiB clusters spans gigabytes.
     */
    private static Path backingFile(Layout l) throws IOException {
        Path p = DIR.resolve("backing-" + l.clusterBits() + "-" + l.extendedL2() + "-" + l.l2Tables() + "-" + l.hot()
                + ".raw");
        if (!Files.exists(p)) {
            Path tmp = Files.createTempFile(DIR, "backing", ".tmp");
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(tmp,
                    java.nio.file.StandardOpenOption.WRITE)) {
                for (int t = 0; t < l.l2Tables(); t++) {
                    long from = l.hotCluster(t * l.hot()) * l.clusterSize();
                    long to = Math.min(l.size(), from + (l.hot() + 2) * l.clusterSize());
                    ByteBuffer b = ByteBuffer.allocate((int) (to - from));
                    SectorHistory.fill(b, from / SectorHistory.SECTOR, SectorHistory.BACKING);
                    ch.write(b.flip(), from);
                }
                ch.truncate(l.size());
                if (ch.size() < l.size()) {
                    ch.write(ByteBuffer.allocate(1), l.size() - 1);
                }
            }
            Files.move(tmp, p, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            p.toFile().deleteOnExit();
        }
        return p;
    }

    OpenOptions openOptions(SimScheduler sim) {
        int slice = layout.sliceSize();
        ImageOptions tuning = ImageOptions.defaults()
                .withL2CacheBytes((long) layout.l2Slices() * slice)
                .withRefblockCacheBytes((long) layout.refblockSlices() * slice)
                .withPool(layout.pool())
                // Low 1: a refill is asked for just as the pool runs dry, when nothing pooled keeps the image dirty
                // and a table edit's clean may slip in before the refill's allocation; high 4: the refill brings 2,
                // so the next take asks for no refill (whose dirty bit would cover what that take links).
                .withPoolThresholds(1, 4, 16)
                // FileChannel: the backing file's I/O runs on the simulation's carrier, so the schedule alone
                // decides the interleaving (io_uring's completions would arrive from a thread outside it).
                .withStorage(StorageBackend.FILECHANNEL);
        return OpenOptions.readWriteDefaults().withTuning(tuning).withTicker(sim);
    }

    /** What a passing run leaves: the trace of requests and outcomes, and the closed image. */
    record Outcome(List<String> trace, byte[] image) {
    }

    /**
     * Runs the workload under {@code sim}'s schedule, with a crash copy taken at host flush {@code crashFlush} (0:
     * none); throws AssertionError with the trace on a violation.
     */
    Outcome run(SimScheduler sim, long crashFlush) throws Exception {
        SectorHistory history = new SectorHistory(layout.backing());
        MemoryStorage mem = new MemoryStorage(template(layout));
        List<byte[]> crashStates = new ArrayList<>();
        Storage disk = new CrashPoint(new SimStorage(mem, sim, layout.delayPercent(), 50_000), mem, crashFlush,
                crashStates);
        List<String> trace = new java.util.concurrent.CopyOnWriteArrayList<>();
        Qcow2Image img = Qcow2Image.open(disk, layout.backing() ? DIR : null, openOptions(sim));
        Map<Integer, Object> snapshots = new ConcurrentHashMap<>();
        java.util.concurrent.locks.ReentrantLock resizes = new java.util.concurrent.locks.ReentrantLock();
        try {
            List<Thread> threads = new ArrayList<>();
            for (int g = 0; g < guests.size(); g++) {
                int guest = g;
                threads.add(sim.start("guest-" + g, () -> {
                    for (Op op : guests.get(guest)) {
                        perform(img, guest, op, history, snapshots, resizes, trace);
                    }
                }));
            }
            for (Thread t : threads) {
                t.join();
            }
        } finally {
            img.close();
        }
        List<String> problems = new ArrayList<>(history.violations());
        problems.addAll(checkAfterClose(mem, history));
        for (byte[] state : crashStates) {
            problems.addAll(checkCrashState(state));
        }
        if (!problems.isEmpty()) {
            throw new AssertionError(problems.stream().limit(8).collect(Collectors.joining("\n  ", "\n  ", ""))
                    + "\nlayout " + layout + "\ntrace:\n  " + String.join("\n  ", trace));
        }
        return new Outcome(List.copyOf(trace), mem.snapshot());
    }

    /** qemu-img check of a closed image: exit 0, nothing to report. */
    static void qemuCheck(byte[] image) throws IOException {
        Path p = Files.createTempFile(DIR, "closed", ".qcow2");
        try {
            Files.write(p, image);
            io.github.qcowloom.testing.Qemu.Result r = io.github.qcowloom.testing.Qemu.exec(
                    List.of("qemu-img", "check", "-f", "qcow2", p.toString()));
            if (r.exitCode() != 0) {
                throw new AssertionError("qemu-img check exits " + r.exitCode() + ":\n" + r.stdout() + r.stderr());
            }
        } finally {
            Files.deleteIfExists(p);
        }
    }

    private void perform(Qcow2Image img, int guest, Op op, SectorHistory h, Map<Integer, Object> snapshots,
            java.util.concurrent.locks.ReentrantLock resizes, List<String> trace) {
        long start = h.tick();
        String what = "g" + guest + " " + op;
        String outcome = "ok";
        long offset = op.sector() * SectorHistory.SECTOR;
        int bytes = op.count() * SectorHistory.SECTOR;
        try {
            switch (op.kind()) {
                case WRITE, COMPRESSED -> {
                    int id = h.newId();
                    ByteBuffer b = ByteBuffer.allocate(bytes);
                    SectorHistory.fill(b, op.sector(), id);
                    b.flip();
                    if (op.kind() == Kind.WRITE) {
                        img.write(offset, b);
                    } else {
                        img.writeCompressed(offset, b);
                    }
                    h.wrote(start, h.tick(), op.sector(), op.count(), id, what + " #" + id);
                    outcome = "ok #" + id;
                }
                case READ -> {
                    ByteBuffer b = ByteBuffer.allocate(bytes);
                    img.read(offset, b);
                    b.flip();
                    h.read(start, h.tick(), op.sector(), b, what);
                }
                case DISCARD -> {
                    img.discard(offset, bytes);
                    h.discarded(start, h.tick(), op.sector(), op.count());
                }
                case ZEROES -> {
                    img.writeZeroes(offset, bytes, (op.sector() & 1) == 0);
                    h.wrote(start, h.tick(), op.sector(), op.count(), 0, what);
                }
                case FAST_ZEROES -> {
                    if (img.writeZeroesFast(offset, bytes, (op.sector() & 1) == 0)) {
                        h.wrote(start, h.tick(), op.sector(), op.count(), 0, what);
                    } else {
                        h.zeroedInPart(start, h.tick(), op.sector(), op.count());
                        outcome = "not fast";
                    }
                }
                case CACHE -> img.prefetch(offset, bytes); // changes no sector: a lost write shows in later reads
                case FLUSH -> img.flush();
                case SNAPSHOT -> {
                    // One snapshot per name at a time: the name is claimed first (the model needs to know which
                    // creation an apply restores; qemu-img allows duplicate names, the workload does not).
                    if (snapshots.putIfAbsent(op.snap(), CLAIMED) != null) {
                        outcome = "name taken";
                    } else {
                        try {
                            Snapshots.create(img, "s" + op.snap());
                            snapshots.put(op.snap(), h.snapshotCreated(start, h.tick()));
                        } catch (IOException | RuntimeException e) {
                            snapshots.remove(op.snap());
                            throw e;
                        }
                    }
                }
                case APPLY, DELETE -> {
                    // The request owns the snapshot's name while it runs (claimed, so no guest creates another of
                    // that name or deletes it meanwhile); its interval starts once it does, after the creation the
                    // model will restore. A delete frees the name only once the snapshot is gone.
                    Object handle = snapshots.get(op.snap());
                    if (handle == null || handle == CLAIMED || !snapshots.replace(op.snap(), handle, CLAIMED)) {
                        outcome = "no such snapshot now";
                    } else {
                        boolean deleted = false;
                        try {
                            long owned = h.tick();
                            Snapshot s = Snapshots.findByName(img.snapshots(), "s" + op.snap()).orElseThrow(
                                    () -> new AssertionError("s" + op.snap() + " was created but is not listed"));
                            if (op.kind() == Kind.APPLY) {
                                Snapshots.apply(img, s);
                                h.applied(owned, h.tick(), (SectorHistory.Capture) handle);
                            } else {
                                Snapshots.delete(img, s);
                                deleted = true;
                            }
                        } finally {
                            if (deleted) {
                                snapshots.remove(op.snap());
                            } else {
                                snapshots.put(op.snap(), handle);
                            }
                        }
                    }
                }
                case SHRINK, GROW -> {
                    // Resizes take turns, so that the size before each is known (the model needs it); they still
                    // race every other request.
                    resizes.lock();
                    try {
                        long old = img.size();
                        long from = h.tick();
                        img.resize(offset);
                        long cutFrom = (offset + layout.clusterSize() - 1) & -layout.clusterSize();
                        h.resized(from, h.tick(), old, offset, cutFrom);
                    } finally {
                        resizes.unlock();
                    }
                }
            }
        } catch (OutOfRangeException | SnapshotNotFoundException | RefcountOverflowException e) {
            outcome = e.getClass().getSimpleName();
        } catch (ImageException e) {
            if (e.getClass() == ImageException.class && (e.getMessage().startsWith("Compressed write")
                    || e.getMessage().startsWith("Cannot shrink"))) {
                outcome = "refused";
            } else {
                h.violation(what + " failed: " + e);
                outcome = e.toString();
            }
        } catch (IOException | RuntimeException | AssertionError e) {
            h.violation(what + " failed: " + e);
            outcome = e.toString();
        }
        trace.add(what + " [" + start + "," + h.tick() + "] -> " + outcome);
    }

    /** Our check of the closed image: clean, no corruption, no leak; every sector reads a legal value. */
    private List<String> checkAfterClose(MemoryStorage mem, SectorHistory h) throws IOException {
        List<String> problems = new ArrayList<>();
        byte[] image = mem.snapshot();
        Header header = ImageMetadata.readHeader(new MemoryStorage(image));
        if (header.dirty() || header.corrupt()) {
            problems.add("after close the header is " + (header.corrupt() ? "corrupt" : "dirty"));
        }
        CheckResult r = ImageChecker.check(new MemoryStorage(image), "sim.qcow2");
        if (r.corruptions() > 0 || r.leaks() > 0 || r.checkErrors() > 0) {
            problems.add("check after close: " + r.corruptions() + " corruptions, " + r.leaks() + " leaks, "
                    + r.checkErrors() + " errors: " + r.messages().stream().limit(4).toList());
        }
        if (!problems.isEmpty()) {
            return problems;
        }
        try (Qcow2Image img = Qcow2Image.open(new MemoryStorage(image), layout.backing() ? DIR : null,
                OpenOptions.readOnlyDefaults())) {
            long t = h.tick();
            ByteBuffer cluster = ByteBuffer.allocate((int) layout.clusterSize());
            for (int i = 0; i < layout.l2Tables() * layout.hot(); i++) {
                long offset = layout.hotCluster(i) * layout.clusterSize();
                if (offset >= img.size()) {
                    break;
                }
                cluster.clear().limit((int) Math.min(cluster.capacity(), img.size() - offset));
                img.read(offset, cluster);
                h.read(t, t, offset / SectorHistory.SECTOR, cluster.flip(), "read-back after close");
            }
        }
        return problems;
    }

    /**
     * A crash state taken right after a host flush (a process kill there: every write issued survives): the corrupt
     * bit is never set; a clean header has no corruption (the dirty bit must stand wherever refcounts lag); a read-write
     * open of a dirty one repairs it to a clean check.
     */
    private List<String> checkCrashState(byte[] state) throws IOException {
        List<String> problems = new ArrayList<>();
        Header header = ImageMetadata.readHeader(new MemoryStorage(state));
        if (header.corrupt()) {
            return List.of("crash state: the corrupt bit is set");
        }
        CheckResult before = ImageChecker.check(new MemoryStorage(state), "crash.qcow2");
        if (!header.dirty() && before.corruptions() > 0) {
            problems.add("crash state: clean header over " + before.corruptions() + " corruptions: "
                    + before.messages().stream().limit(4).toList());
        }
        MemoryStorage repaired = new MemoryStorage(state);
        Qcow2Image.open(repaired, layout.backing() ? DIR : null,
                OpenOptions.readWriteDefaults().withPool(false)).close();
        CheckResult after = ImageChecker.check(new MemoryStorage(repaired.snapshot()), "crash.qcow2");
        // A clean header may sit over leaks (a free whose entry removal is durable but whose refcount decrease is
        // not, crash.md's "leaks at worst"); a dirty one is recounted, so nothing may be left.
        if (after.corruptions() > 0 || (header.dirty() && after.leaks() > 0)) {
            problems.add("crash state after repair: " + after.corruptions() + " corruptions, " + after.leaks()
                    + " leaks: " + after.messages().stream().limit(4).toList());
        }
        return problems;
    }

    /**
     * Crash states at host syncs (flushes and ranged ones): right after every sync that leaves the header clean, the
     * image as it stands is checked at once (a process killed there leaves exactly it), and kept when it is corrupt;
     * and a copy is kept after the {@code target}-th sync whatever the header says, for the full check (repair
     * included).
     */
    private static final class CrashPoint extends ForwardingStorage {
        private final MemoryStorage mem;
        private final long target;
        private final List<byte[]> states;
        private long flushes;

        CrashPoint(Storage inner, MemoryStorage mem, long target, List<byte[]> states) {
            super(inner);
            this.mem = mem;
            this.target = target;
            this.states = states;
        }

        @Override
        public void flush() throws IOException {
            super.flush();
            atSync();
        }

        /** A ranged sync is a point to look at too: allocations make them where they made flushes. */
        @Override
        public void flushRange(long position, long length) throws IOException {
            super.flushRange(position, length);
            atSync();
        }

        private void atSync() throws IOException {
            // Single carrier: no other thread runs between the sync's return and the check or the copy, which
            // read the memory below the simulated disk and so do not yield.
            if (++flushes == target) {
                states.add(mem.snapshot());
            } else if (!ImageMetadata.readHeader(mem).dirty()
                    && ImageChecker.check(mem, "crash.qcow2").corruptions() > 0) {
                states.add(mem.snapshot());
            }
        }
    }
}
