package io.github.qcowloom.os;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.storage.FileStorage;
import io.github.qcowloom.testing.OnThread;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The io_uring event loops: requests from their threads go through the loops' own rings, more threads than a ring
 * has slots wait for one, threads handed to a sleeping loop from outside wake it (seeded timings, so that hand-ins
 * land before, during and after the loop goes to sleep), children inherit the loop, and an interrupted request still
 * returns its result. Each test fails by timing out if a thread is stranded on a loop.
 */
@Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class UringLoopTest {
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    @Test
    void moreThreadsThanSlotsEachWriteAndReadBackTheirBlockThroughTheLoopsRings() throws Exception {
        int threads = 600; // more than two rings' slots: some wait for a slot
        Path file = dir.resolve("f");
        Files.write(file, new byte[threads * BLOCK]);
        UringQueue queue = UringQueue.shared();
        long loopRequestsBefore = loopRequests();
        long sharedBefore = allRequests() - loopRequestsBefore;
        ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
        try (NativeFile f = NativeFile.open(file, true, false)) {
            ThreadFactory loops = UringLoops.threadFactory(2, "test-loop");
            List<Thread> started = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                started.add(loops.newThread(() -> {
                    try {
                        assertNotNull(UringLoop.current(), "a thread of the factory runs on a loop");
                        SplittableRandom rnd = new SplittableRandom(id);
                        ByteBuffer out = ByteBuffer.allocateDirect(BLOCK);
                        for (int i = 0; i < BLOCK; i++) {
                            out.put(i, (byte) rnd.nextInt());
                        }
                        if (rnd.nextBoolean()) {
                            Thread.yield();
                        }
                        assertEquals(BLOCK, queue.write(f.fd(), address(out), BLOCK, (long) id * BLOCK));
                        ByteBuffer in = ByteBuffer.allocateDirect(BLOCK);
                        assertEquals(BLOCK, queue.read(f.fd(), address(in), BLOCK, (long) id * BLOCK));
                        assertEquals(out, in, "thread " + id + " reads back what it wrote");
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                }));
            }
            started.forEach(Thread::start);
            for (Thread t : started) {
                t.join();
            }
        }
        assertTrue(failures.isEmpty(), () -> failures.peek().toString());
        assertEquals(2L * threads, loopRequests() - loopRequestsBefore, "every request went to a loop");
        assertEquals(sharedBefore, allRequests() - loopRequests(), "no request went through the shared queue");
        byte[] all = Files.readAllBytes(file);
        for (int id = 0; id < threads; id++) {
            SplittableRandom rnd = new SplittableRandom(id);
            for (int i = 0; i < BLOCK; i++) {
                assertEquals((byte) rnd.nextInt(), all[id * BLOCK + i], "block " + id + " byte " + i);
            }
        }
    }

    /**
     * A platform thread unparks a loop's thread at seeded moments after it announced it is about to park, spinning
     * rather than blocking so that it is running while the loop parks the thread and goes to sleep: hand-ins land
     * before, inside and after the few instructions in which the loop decides to sleep. Every thread must resume;
     * a missed wake-up strands it and the round fails.
     */
    @Test
    void threadsHandedInFromOutsideAlwaysWakeTheLoop() throws Exception {
        int rounds = 20_000;
        ThreadFactory loops = UringLoops.threadFactory(1, "test-wake");
        SplittableRandom rnd = new SplittableRandom(42);
        for (int round = 0; round < rounds; round++) {
            AtomicBoolean aboutToPark = new AtomicBoolean();
            AtomicBoolean go = new AtomicBoolean();
            Thread t = loops.newThread(() -> {
                aboutToPark.set(true);
                while (!go.get()) {
                    LockSupport.park();
                }
            });
            t.start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!aboutToPark.get()) {
                assertTrue(System.nanoTime() < deadline, "round " + round + ": the loop did not run a new thread");
                Thread.onSpinWait();
            }
            long until = System.nanoTime() + rnd.nextInt(round % 2 == 0 ? 2_000 : 30_000);
            while (System.nanoTime() < until) {
                Thread.onSpinWait();
            }
            go.set(true);
            LockSupport.unpark(t);
            assertTrue(t.join(java.time.Duration.ofSeconds(10)), "round " + round + ": the loop did not wake");
        }
    }

    /**
     * The race the loop's second look at its queue closes, made to happen every time: a thread is handed in after
     * the loop found its queue empty and before it says it sleeps, so the hand-in wakes nobody. Without the second
     * look the loop sleeps with the thread in its queue, and the join times out.
     */
    @Test
    void aHandInJustBeforeTheLoopSaysItSleepsIsRun() throws Exception {
        ThreadFactory loops = UringLoops.threadFactory(1, "test-idle");
        AtomicReference<UringLoop> loop = new AtomicReference<>();
        AtomicBoolean go = new AtomicBoolean();
        Thread parked = loops.newThread(() -> {
            loop.set(UringLoop.current());
            while (!go.get()) {
                LockSupport.park();
            }
        });
        parked.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (parked.getState() != Thread.State.WAITING) {
            assertTrue(System.nanoTime() < deadline, "the thread parks");
            Thread.onSpinWait();
        }
        UringLoop l = loop.get();
        go.set(true);
        l.idleHook = () -> {
            l.idleHook = null;
            LockSupport.unpark(parked); // on the loop's own thread, with sleeping unset: no wake-up is sent
        };
        loops.newThread(() -> { }).start(); // wakes the loop, which then runs the hook on its next idle pass
        assertTrue(parked.join(java.time.Duration.ofSeconds(10)), "the thread handed in before the sleep ran");
    }

    @Test
    void aVirtualThreadStartedOnALoopRunsThereToo() throws Exception {
        ThreadFactory loops = UringLoops.threadFactory(1, "test-parent");
        AtomicReference<UringLoop> parent = new AtomicReference<>();
        AtomicReference<UringLoop> child = new AtomicReference<>();
        AtomicReference<UringLoop> platform = new AtomicReference<>();
        ThreadFactory twoLoops = UringLoops.threadFactory(2, "test-two");
        List<UringLoop> fromFactory = new ArrayList<>();
        Thread t = loops.newThread(() -> {
            parent.set(UringLoop.current());
            try {
                Thread.ofVirtual().start(() -> child.set(UringLoop.current())).join();
                Thread.ofPlatform().start(() -> platform.set(UringLoop.current())).join();
                for (int i = 0; i < 4; i++) { // the factory keeps a thread started on one of its loops there
                    AtomicReference<UringLoop> on = new AtomicReference<>();
                    Thread c = twoLoops.newThread(() -> on.set(UringLoop.current()));
                    c.start();
                    c.join();
                    fromFactory.add(on.get());
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        t.start();
        t.join();
        assertNotNull(parent.get());
        assertSame(parent.get(), child.get());
        assertNull(platform.get(), "a platform thread is no loop's");
        assertEquals(List.of(parent.get(), parent.get(), parent.get(), parent.get()), fromFactory);
        assertNull(UringLoop.current(), "nor is the test's thread");
    }

    @Test
    void anInterruptedRequestStillReturnsItsResultAndKeepsTheInterrupt() throws Exception {
        Path file = dir.resolve("i");
        Files.write(file, new byte[64 * BLOCK]);
        UringQueue queue = UringQueue.shared();
        ThreadFactory loops = UringLoops.threadFactory(1, "test-interrupt");
        ConcurrentLinkedQueue<String> wrong = new ConcurrentLinkedQueue<>();
        try (NativeFile f = NativeFile.open(file, true, false)) {
            List<Thread> started = new ArrayList<>();
            for (int n = 0; n < 64; n++) {
                int id = n;
                Thread t = loops.newThread(() -> {
                    ByteBuffer b = ByteBuffer.allocateDirect(BLOCK);
                    for (int i = 0; i < 50; i++) {
                        try {
                            int r = queue.read(f.fd(), address(b), BLOCK, (long) id * BLOCK);
                            if (r != BLOCK) {
                                wrong.add("thread " + id + " read " + r);
                            }
                        } catch (Exception e) {
                            wrong.add(e.toString());
                        }
                        Thread.interrupted();
                    }
                    Thread.currentThread().interrupt();
                    try {
                        int r = queue.read(f.fd(), address(b), BLOCK, 0);
                        if (r != BLOCK || !Thread.currentThread().isInterrupted()) {
                            wrong.add("thread " + id + ": " + r + ", interrupted " + Thread.interrupted());
                        }
                    } catch (Exception e) {
                        wrong.add(e.toString());
                    }
                });
                started.add(t);
                t.start();
            }
            for (int i = 0; i < 200; i++) {
                started.get(i % started.size()).interrupt();
                LockSupport.parkNanos(TimeUnit.MICROSECONDS.toNanos(20));
            }
            for (Thread t : started) {
                t.join();
            }
        }
        assertTrue(wrong.isEmpty(), wrong::toString);
    }

    /**
     * A thread waiting in the ring for a socket's data (an idle NBD connection) is not a request in flight: a file
     * read alone on the loop beside it is still made directly, and the wait ends when the data comes.
     */
    @Test
    void aSocketWaitInTheRingLeavesAFileReadAloneDirect() throws Exception {
        Path file = dir.resolve("beside");
        Files.write(file, new byte[BLOCK]);
        Path path = dir.resolve("wait.sock");
        int listener = UnixSockets.listen(path, 1);
        int client = UnixSockets.connect(path);
        int server = UnixSockets.accept(listener);
        ThreadFactory loops = UringLoops.threadFactory(1, "test-socket-wait");
        try (NativeFile f = NativeFile.open(file, true, false)) {
            long receivesBefore = LoopSockets.receives();
            CompletableFuture<Integer> received = OnThread.start(loops,
                    () -> LoopSockets.receive(server, ByteBuffer.allocateDirect(16)));
            while (LoopSockets.receives() == receivesBefore) { // counted as it goes into the ring
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(1));
            }
            long direct = UringLoop.DIRECT_REQUESTS.sum();
            long ring = UringLoop.REQUESTS.sum();
            CompletableFuture<Integer> read = OnThread.start(loops,
                    () -> UringQueue.shared().read(f.fd(), address(ByteBuffer.allocateDirect(BLOCK)), BLOCK, 0));
            assertEquals(BLOCK, read.get(10, TimeUnit.SECONDS));
            assertEquals(direct + 1, UringLoop.DIRECT_REQUESTS.sum(), "the read was made directly");
            assertEquals(ring, UringLoop.REQUESTS.sum(), "no file request went through the ring");
            assertFalse(received.isDone(), "the socket wait is still waiting");
            UnixSockets.send(client, Arena.global().allocate(3), 3);
            assertEquals(3, received.get(10, TimeUnit.SECONDS));
        } finally {
            UnixSockets.close(client);
            UnixSockets.close(server);
            UnixSockets.close(listener);
        }
    }

    /**
     * Idle clients may not take the slots file requests need: past half the slots, a socket read answers at once
     * that the caller must wait elsewhere, and a file request still goes through the ring beside 127 socket waits.
     */
    @Test
    void socketWaitsTakeAtMostHalfTheSlots() throws Exception {
        int waits = UringLoop.CAPACITY / 2;
        int sockets = waits + 3;
        Path path = dir.resolve("many.sock");
        int listener = UnixSockets.listen(path, sockets);
        int[] clients = new int[sockets];
        int[] servers = new int[sockets];
        for (int i = 0; i < sockets; i++) {
            clients[i] = UnixSockets.connect(path);
            servers[i] = UnixSockets.accept(listener);
        }
        ThreadFactory loops = UringLoops.threadFactory(1, "test-socket-slots");
        List<CompletableFuture<Integer>> received = new ArrayList<>();
        try {
            long receivesBefore = LoopSockets.receives();
            for (int i = 0; i < sockets; i++) {
                int fd = servers[i];
                received.add(OnThread.start(loops, () -> LoopSockets.receive(fd, ByteBuffer.allocateDirect(16))));
            }
            for (CompletableFuture<Integer> r : received.subList(waits, sockets)) {
                assertEquals(LoopSockets.NOT_ON_A_LOOP, r.get(10, TimeUnit.SECONDS), "a read past half the slots");
            }
            assertEquals(receivesBefore + waits, LoopSockets.receives(), "waits in the ring");
            Path file = dir.resolve("beside-many");
            Files.write(file, new byte[BLOCK]);
            try (NativeFile f = NativeFile.open(file, true, false)) {
                long ringRequests = UringLoop.REQUESTS.sum();
                CompletableFuture<Integer> sync = OnThread.start(loops, () -> UringQueue.shared().fdatasync(f.fd()));
                assertEquals(0, sync.get(10, TimeUnit.SECONDS), "an fdatasync through the ring beside the waits");
                assertEquals(ringRequests + 1, UringLoop.REQUESTS.sum());
            }
            for (int i = 0; i < waits; i++) {
                UnixSockets.send(clients[i], Arena.global().allocate(1), 1);
            }
            for (CompletableFuture<Integer> r : received.subList(0, waits)) {
                assertEquals(1, r.get(10, TimeUnit.SECONDS));
            }
        } finally {
            for (int i = 0; i < sockets; i++) {
                UnixSockets.close(clients[i]);
                UnixSockets.close(servers[i]);
            }
            UnixSockets.close(listener);
        }
    }

    /** Requests the loops made, through their rings or directly. */
    private static long loopRequests() {
        return UringLoop.REQUESTS.sum() + UringLoop.DIRECT_REQUESTS.sum();
    }

    /** Requests the loops and the shared queue made, either way. */
    private static long allRequests() {
        long[] c = UringQueue.sharedCounters();
        return c[0] + c[1];
    }

    private static long address(ByteBuffer direct) {
        return MemorySegment.ofBuffer(direct).address();
    }

    /** Loops are refused before Java 24 (a request inside synchronized code would park the loop itself). */
    @Test
    void loopsNeedJava24() {
        assertNotNull(UringLoops.javaVersionReason(23));
        assertTrue(UringLoops.javaVersionReason(22).contains("Java 24"));
        assertNull(UringLoops.javaVersionReason(24));
        assertNull(UringLoops.javaVersionReason(25));
    }

    /**
     * A file's size set from a loop (FileStorage's ftruncates: resize, a discard at the end, a flush's extension,
     * an O_DIRECT write ending off a block past the end) goes through the loop's ring on Linux 6.9+, so the loop
     * runs on while the file system journals it; on an older kernel the ring refuses the operation once, and the
     * system call is made instead. The thread is alone on its loop, so its reads and writes are made directly and
     * the loop's ring requests are its ftruncates alone.
     */
    @Test
    void aFilesSizeSetFromALoopGoesThroughItsRing() throws Exception {
        Path file = dir.resolve("sized");
        Files.write(file, new byte[BLOCK]);
        ThreadFactory loops = UringLoops.threadFactory(1, "test-truncate");
        AtomicReference<Throwable> failure = new AtomicReference<>();
        long ringRequestsBefore = UringLoop.REQUESTS.sum();
        try (FileStorage storage = FileStorage.open(file, false, true, StorageBackend.IO_URING)) {
            assertEquals(StorageBackend.IO_URING, storage.backend());
            Thread t = loops.newThread(() -> {
                try {
                    storage.setLength(16L * BLOCK); // 1
                    assertEquals(16L * BLOCK, Files.size(file));
                    storage.setLength(3L * BLOCK); // 2
                    storage.punchHole(2L * BLOCK, BLOCK); // 4: shrinks, then grows back
                    storage.extendTo(4L * BLOCK); // 5
                    storage.write(ByteBuffer.wrap(new byte[100]), 4L * BLOCK); // 6: a whole block, trimmed
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            t.start();
            t.join();
        }
        assertNull(failure.get());
        assertEquals(4L * BLOCK + 100, Files.size(file));
        String[] version = System.getProperty("os.version").split("[.-]");
        int major = Integer.parseInt(version[0]);
        if (major > 6 || major == 6 && Integer.parseInt(version[1]) >= 9) {
            assertTrue(UringQueue.truncatesInRing(), "Linux 6.9+ takes IORING_OP_FTRUNCATE");
        }
        long inRing = UringLoop.REQUESTS.sum() - ringRequestsBefore;
        if (UringQueue.truncatesInRing()) {
            assertEquals(6, inRing, "every ftruncate went through the ring");
        } else {
            assertTrue(inRing <= 1, "at most the one the ring refused (if no earlier test met it), then none");
        }
    }
}
