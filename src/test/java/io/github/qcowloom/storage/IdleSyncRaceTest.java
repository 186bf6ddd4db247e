package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Writers and flushers race on one file, each pausing at random (seeded) points, some inside the kernel calls. Every
 * write that returned before a flush was called must be covered by a sync that began after the write reached the
 * kernel and ended before that flush returned: a skipped sync must never leave a finished write unsynced.
 */
class IdleSyncRaceTest {
    private static final int WRITERS = 4;
    private static final int FLUSHERS = 4;
    private static final int ROUNDS = 300;

    @TempDir
    Path dir;

    /** One event's place in the global order. */
    private final AtomicLong clock = new AtomicLong();

    private record Span(long start, long end) {
    }

    /** The file's own I/O, recording each whole-file sync's span and pausing at random inside writes and syncs. */
    private final class Recording extends ForwardingFileIo {
        final ConcurrentLinkedQueue<Span> syncs = new ConcurrentLinkedQueue<>();

        Recording(FileIo inner) {
            super(inner);
        }

        @Override
        public void force() throws IOException {
            long start = clock.incrementAndGet();
            pause(start);
            inner.force();
            syncs.add(new Span(start, clock.incrementAndGet()));
        }

        @Override
        public int write(ByteBuffer src, long position) throws IOException {
            pause(position);
            int n = inner.write(src, position);
            // The write is in the page cache now: a sync that starts later covers it. (Taken after FileStorage.write
            // returned instead, a sync could begin between the two and rightly cover the write unrecorded.)
            wroteAt.set(clock.incrementAndGet());
            return n;
        }
    }

    private Recording io;
    /** When the calling thread's last write reached the kernel. */
    private final ThreadLocal<Long> wroteAt = new ThreadLocal<>();

    private static void pause(long salt) {
        long r = (salt * 0x9E3779B97F4A7C15L) >>> 60;
        if (r < 4) {
            LockSupport.parkNanos(r * 20_000);
        } else if (r < 8) {
            Thread.yield();
        }
    }

    /** The index of the first value not below {@code key} in sorted {@code values}. */
    private static int lowerBound(long[] values, long key) {
        int lo = 0;
        int hi = values.length;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (values[mid] < key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3})
    void noFinishedWriteIsLeftUnsynced(long seed) throws Exception {
        Path file = dir.resolve("f" + seed);
        Files.write(file, new byte[1 << 20]);
        ConcurrentLinkedQueue<Span> writesDone = new ConcurrentLinkedQueue<>(); // reached the kernel, returned
        ConcurrentLinkedQueue<Span> flushes = new ConcurrentLinkedQueue<>();
        List<Throwable> failures = new ArrayList<>();
        try (FileStorage s = FileStorage.openWrapped(file, false, inner -> io = new Recording(inner))) {
            CountDownLatch start = new CountDownLatch(1);
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < WRITERS + FLUSHERS; t++) {
                boolean writer = t < WRITERS;
                Random random = new Random(seed * 31 + t);
                threads.add(Thread.ofPlatform().start(() -> {
                    try {
                        start.await();
                        for (int i = 0; i < ROUNDS; i++) {
                            if (random.nextInt(4) == 0) {
                                LockSupport.parkNanos(random.nextInt(50_000));
                            }
                            if (writer) {
                                s.write(ByteBuffer.wrap(new byte[] {(byte) i}), random.nextInt(1 << 20));
                                writesDone.add(new Span(wroteAt.get(), clock.incrementAndGet()));
                            } else {
                                long called = clock.incrementAndGet();
                                s.flush();
                                flushes.add(new Span(called, clock.incrementAndGet()));
                            }
                        }
                    } catch (Throwable e) {
                        synchronized (failures) {
                            failures.add(e);
                        }
                    }
                }));
            }
            start.countDown();
            for (Thread t : threads) {
                t.join();
            }
        }
        assertTrue(failures.isEmpty(), failures.toString());
        // For each flush, of the writes that returned before it was called, only the one that reached the kernel
        // last matters: a sync that began after that began after every other. Writes by return, with the latest
        // arrival in the kernel so far; syncs by start, with the earliest end from each one on.
        List<Span> writes = new ArrayList<>(writesDone);
        writes.sort((a, b) -> Long.compare(a.end(), b.end()));
        long[] returned = new long[writes.size()];
        long[] latestInKernel = new long[writes.size()];
        for (int i = 0; i < writes.size(); i++) {
            returned[i] = writes.get(i).end();
            latestInKernel[i] = Math.max(writes.get(i).start(), i == 0 ? 0 : latestInKernel[i - 1]);
        }
        List<Span> syncs = new ArrayList<>(io.syncs);
        syncs.sort((a, b) -> Long.compare(a.start(), b.start()));
        long[] earliestEndFrom = new long[syncs.size() + 1];
        earliestEndFrom[syncs.size()] = Long.MAX_VALUE;
        for (int i = syncs.size() - 1; i >= 0; i--) {
            earliestEndFrom[i] = Math.min(syncs.get(i).end(), earliestEndFrom[i + 1]);
        }
        for (Span f : flushes) {
            int before = lowerBound(returned, f.start()) - 1;
            if (before < 0) {
                continue;
            }
            long w = latestInKernel[before];
            int from = 0;
            while (from < syncs.size() && syncs.get(from).start() <= w) {
                from++;
            }
            if (earliestEndFrom[from] >= f.end()) {
                fail("a write that reached the kernel at " + w + " and returned before the flush called at "
                        + f.start() + " was not synced by it (it returned at " + f.end() + ")");
            }
        }
        // The race exercised the skip: flushes that came after a write and made no sync of their own.
        long skipped = flushes.stream().filter(f -> lowerBound(returned, f.start()) > 0
                && syncs.stream().noneMatch(k -> k.start() > f.start() && k.end() < f.end())).count();
        assertTrue(skipped > 0, "no flush after a write skipped its sync");
    }
}
