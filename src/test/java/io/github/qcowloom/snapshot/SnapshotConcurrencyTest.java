package io.github.qcowloom.snapshot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Snapshots taken while writers keep writing: the image stays online (writes wait during a snapshot, then go on),
 * and every snapshot shows a consistent state. Each writer owns one unaligned range and rewrites all of it with
 * version 1, 2, 3, ... in single requests, so a snapshot must show each range wholly at one version, no older than
 * the last write completed before the snapshot began and no newer than the last one started before it ended.
 */
class SnapshotConcurrencyTest {
    private static final int WRITERS = 8;
    private static final int SNAPSHOTS = 6;
    private static final int RANGE = 70_000;
    private static final int STRIDE = 1 << 20;
    private static final int FIRST = 1000;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** Writer {@code w}'s range at {@code version}: 8-byte words (w, version); all zeroes for version 0. */
    private static byte[] content(int w, int version) {
        byte[] b = new byte[RANGE];
        if (version > 0) {
            ByteBuffer bb = ByteBuffer.wrap(b);
            while (bb.remaining() >= 8) {
                bb.putInt(w + 1).putInt(version);
            }
        }
        return b;
    }

    @Test
    // A separate thread, so that a deadlock (lock waits ignore interrupts) fails the test instead of hanging it.
    @Timeout(value = 120, unit = TimeUnit.SECONDS, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void snapshotsTakenUnderWritersShowConsistentStates() throws Exception {
        Path image = dir.resolve("busy.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(WRITERS * STRIDE).withClusterSize(4096));
        AtomicIntegerArray started = new AtomicIntegerArray(WRITERS);
        AtomicIntegerArray completed = new AtomicIntegerArray(WRITERS);
        AtomicBoolean stop = new AtomicBoolean();
        int[][] lowest = new int[SNAPSHOTS][WRITERS];
        int[][] highest = new int[SNAPSHOTS][WRITERS];
        List<Snapshot> taken = new ArrayList<>();
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults());
                ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> writers = new ArrayList<>();
            for (int w = 0; w < WRITERS; w++) {
                int id = w;
                writers.add(threads.submit(() -> {
                    for (int v = 1; !stop.get(); v++) {
                        started.set(id, v);
                        img.write((long) id * STRIDE + FIRST, ByteBuffer.wrap(content(id, v)));
                        completed.set(id, v);
                        if (v % 7 == 0) {
                            img.flush(); // flushes racing with snapshots take the same locks in the same order
                        }
                    }
                    return null;
                }));
            }
            for (int s = 0; s < SNAPSHOTS; s++) {
                Thread.sleep(15);
                for (int w = 0; w < WRITERS; w++) {
                    lowest[s][w] = completed.get(w);
                }
                taken.add(Snapshots.create(img, "busy " + s));
                for (int w = 0; w < WRITERS; w++) {
                    highest[s][w] = started.get(w);
                }
            }
            // Every writer goes on after the last snapshot: a write it starts afterwards completes.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            for (int w = 0; w < WRITERS; w++) {
                while (completed.get(w) <= highest[SNAPSHOTS - 1][w]) {
                    assertTrue(System.nanoTime() < deadline, "writer " + w + " stopped after the snapshots");
                    Thread.sleep(1);
                }
            }
            stop.set(true);
            for (Future<?> f : writers) {
                f.get();
            }
        }
        SnapshotInteropTest.assertClean(image);
        for (int s = 0; s < SNAPSHOTS; s++) {
            byte[] disk = QemuSnapshots.read(image, Integer.parseInt(taken.get(s).id()), dir);
            for (int w = 0; w < WRITERS; w++) {
                int at = w * STRIDE + FIRST;
                byte[] range = Arrays.copyOfRange(disk, at, at + RANGE);
                int version = ByteBuffer.wrap(range).getInt(4);
                assertTrue(version >= lowest[s][w] && version <= highest[s][w], "snapshot " + s + ", writer " + w
                        + ": version " + version + " outside [" + lowest[s][w] + ", " + highest[s][w] + "]");
                if (!Arrays.equals(content(w, version), range)) {
                    fail("snapshot " + s + " shows writer " + w + "'s range torn (not wholly version " + version + ")");
                }
            }
        }
        byte[] now = Qemu.toRaw(image, dir);
        for (int w = 0; w < WRITERS; w++) {
            int at = w * STRIDE + FIRST;
            assertEquals(-1, Arrays.mismatch(content(w, completed.get(w)), Arrays.copyOfRange(now, at, at + RANGE)));
        }
    }
}
