package io.github.qcowloom.soak;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.snapshot.Snapshot;
import io.github.qcowloom.snapshot.Snapshots;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The process {@link SoakTest} kills: 256 virtual-thread guests writing, zeroing and discarding 4 KiB blocks of an
 * image, a flusher and a snapshot thread, until SIGKILL. What it did goes to stdout through {@link SoakLog}:
 * <ul>
 *   <li>{@code A id blk W} after a write of block {@code blk} was acknowledged. A written block holds 16-byte records
 *       {@code (blk, id)} from end to end, so the disk itself says which write, of which block, it holds;</li>
 *   <li>{@code I id blk n Z} before zeroing {@code n} blocks from {@code blk} (write-zeroes of one block, or the
 *       discard of a whole cluster), in the pipe before the request starts, and {@code A id blk n Z} after it;</li>
 *   <li>{@code F k} when flush {@code k} starts and {@code f k} when it returned;</li>
 *   <li>{@code S} after a snapshot was created, {@code s} after one was deleted.</li>
 * </ul>
 * Requests on one block never overlap (a lock per block, held from the id's choice to the logged acknowledgement),
 * so ids grow along each block's history and the log's order of a block's lines is the order they took effect.
 *
 * <p>Locks: one {@code ReentrantLock} per block, taken in ascending block order by a cluster discard; nothing else
 * is locked here.
 */
public final class SoakChild {
    static final int BLOCK = 4096;
    static final int CLUSTER = 65536;
    static final int GUESTS = 256;
    static final int SNAPSHOTS_KEPT = 3;

    private SoakChild() {
    }

    /** Args: image, first id, seed. */
    public static void main(String[] args) throws Exception {
        Path image = Path.of(args[0]);
        AtomicLong ids = new AtomicLong(Long.parseLong(args[1]));
        long seed = Long.parseLong(args[2]);
        SoakLog log = new SoakLog(System.out);
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults())) {
            int blocks = (int) (img.size() / BLOCK);
            ReentrantLock[] locks = new ReentrantLock[blocks];
            for (int i = 0; i < blocks; i++) {
                locks[i] = new ReentrantLock();
            }
            log.durable("ready");
            SplittableRandom seeds = new SplittableRandom(seed);
            for (int g = 0; g < GUESTS; g++) {
                SplittableRandom rnd = seeds.split();
                Thread.ofVirtual().start(() -> guest(img, locks, ids, log, rnd));
            }
            SplittableRandom flushRnd = seeds.split();
            Thread.ofVirtual().start(() -> flusher(img, log, flushRnd));
            SplittableRandom snapRnd = seeds.split();
            Thread.ofVirtual().start(() -> snapshotter(img, log, snapRnd));
            Thread.sleep(Long.MAX_VALUE); // until the parent's SIGKILL
        }
    }

    private static void guest(Qcow2Image img, ReentrantLock[] locks, AtomicLong ids, SoakLog log,
            SplittableRandom rnd) {
        ByteBuffer buf = ByteBuffer.allocateDirect(BLOCK);
        try {
            while (true) {
                int kind = rnd.nextInt(100);
                if (kind < 90) {
                    int blk = rnd.nextInt(locks.length);
                    locks[blk].lock();
                    try {
                        long id = ids.getAndIncrement();
                        buf.clear();
                        while (buf.hasRemaining()) {
                            buf.putLong(blk).putLong(id);
                        }
                        img.write((long) blk * BLOCK, buf.flip());
                        log.line("A " + id + " " + blk + " W");
                    } finally {
                        locks[blk].unlock();
                    }
                } else {
                    boolean cluster = kind >= 96;
                    int n = cluster ? CLUSTER / BLOCK : 1;
                    int blk = rnd.nextInt(locks.length / n) * n;
                    for (int i = 0; i < n; i++) {
                        locks[blk + i].lock();
                    }
                    try {
                        long id = ids.getAndIncrement();
                        String op = id + " " + blk + " " + n + " Z";
                        log.durable("I " + op);
                        if (cluster) {
                            img.discard((long) blk * BLOCK, CLUSTER);
                        } else {
                            img.writeZeroes((long) blk * BLOCK, BLOCK, true);
                        }
                        log.line("A " + op);
                    } finally {
                        for (int i = n - 1; i >= 0; i--) {
                            locks[blk + i].unlock();
                        }
                    }
                }
            }
        } catch (Exception e) {
            log.line("E " + e);
        }
    }

    private static void flusher(Qcow2Image img, SoakLog log, SplittableRandom rnd) {
        try {
            for (long k = 1; ; k++) {
                Thread.sleep(10 + rnd.nextInt(300));
                log.line("F " + k);
                img.flush();
                log.line("f " + k);
            }
        } catch (Exception e) {
            log.line("E " + e);
        }
    }

    private static void snapshotter(Qcow2Image img, SoakLog log, SplittableRandom rnd) {
        try {
            while (true) {
                Thread.sleep(200 + rnd.nextInt(1000));
                Snapshots.create(img, "soak-" + rnd.nextInt(1_000_000));
                log.line("S");
                List<Snapshot> all = Snapshots.list(img);
                if (all.size() > SNAPSHOTS_KEPT) {
                    Snapshots.delete(img, all.get(0));
                    log.line("s");
                }
            }
        } catch (Exception e) {
            log.line("E " + e);
        }
    }
}
