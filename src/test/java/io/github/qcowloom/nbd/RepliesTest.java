package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.qcowloom.simulation.SimScheduler;
import io.github.qcowloom.simulation.Simulation;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntUnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Replies queued by many threads at once: each reaches the socket once, whole and unbroken by another, and each
 * one's {@code sent} runs once, after its bytes are written (a buffer scribbled on at {@code sent} must not show on
 * the wire); none is left queued when the senders are done, even after a failed write.
 */
class RepliesTest {
    private static final int THREADS = 6;
    private static final int PER_THREAD = 5;

    /** A socket that takes some of what it is offered each call, as a full one does, and records it. */
    private static final class ShortWritingChannel implements GatheringByteChannel {
        final ByteArrayOutputStream wire = new ByteArrayOutputStream();
        private final IntUnaryOperator howMany; // of n bytes offered, how many to take (at least 1)
        private final Runnable beforeWrite;
        private final int failAfter; // bytes accepted before writes fail, or -1
        final AtomicInteger writes = new AtomicInteger();
        private final AtomicBoolean writing = new AtomicBoolean();

        ShortWritingChannel(IntUnaryOperator howMany, Runnable beforeWrite, int failAfter) {
            this.howMany = howMany;
            this.beforeWrite = beforeWrite;
            this.failAfter = failAfter;
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
            if (!writing.compareAndSet(false, true)) {
                throw new AssertionError("two threads write at once");
            }
            try {
                return take(srcs, offset, length);
            } finally {
                writing.set(false);
            }
        }

        private long take(ByteBuffer[] srcs, int offset, int length) throws IOException {
            beforeWrite.run();
            writes.incrementAndGet();
            long offered = 0;
            for (int i = offset; i < offset + length; i++) {
                offered += srcs[i].remaining();
            }
            if (failAfter >= 0 && wire.size() >= failAfter) {
                throw new IOException("Broken pipe");
            }
            int take = howMany.applyAsInt((int) Math.min(offered, Integer.MAX_VALUE));
            int left = take;
            for (int i = offset; i < offset + length && left > 0; i++) {
                while (srcs[i].hasRemaining() && left > 0) {
                    wire.write(srcs[i].get());
                    left--;
                }
            }
            return take;
        }

        @Override
        public long write(ByteBuffer[] srcs) throws IOException {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            return (int) write(new ByteBuffer[] {src}, 0, 1);
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {}
    }

    /** What the test sent: a READ's data (filled with the cookie's low byte), or none. */
    private record Expected(long cookie, int dataLength) {}

    /** Sends thread {@code t}'s replies, each cookie {@code t * 100 + i}; data lengths vary, some replies are bare. */
    private static void sendAll(Replies replies, int t, int count, List<Expected> expected,
            Map<Long, AtomicInteger> sentCounts, Runnable between) {
        for (int i = 0; i < count; i++) {
            long cookie = t * 100L + i;
            AtomicInteger sent = new AtomicInteger();
            synchronized (sentCounts) {
                sentCounts.put(cookie, sent);
            }
            if (i % 3 == 2) {
                synchronized (expected) {
                    expected.add(new Expected(cookie, 0));
                }
                replies.ok(cookie, sent::incrementAndGet);
            } else {
                int len = 1 + (int) (cookie * 37 % 300);
                ByteBuffer data = ByteBuffer.allocateDirect(len);
                while (data.hasRemaining()) {
                    data.put((byte) cookie);
                }
                synchronized (expected) {
                    expected.add(new Expected(cookie, len));
                }
                replies.data(cookie, 4096 * cookie, data.flip(), () -> {
                    sent.incrementAndGet();
                    // The pool may hand the buffer to another request now: scribble, as that one would.
                    for (int k = 0; k < data.capacity(); k++) {
                        data.put(k, (byte) 0xEE);
                    }
                });
            }
            between.run();
        }
    }

    /** {@link #THREADS} simulated threads each send their replies, from a seeded moment on; joins them. */
    private static void sendOnThreads(SimScheduler sim, Replies replies, int perThread, List<Expected> expected,
            Map<Long, AtomicInteger> sentCounts, Runnable between) throws InterruptedException {
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < THREADS; t++) {
            int id = t;
            threads.add(sim.start("request-" + t, () -> {
                yieldUpTo(sim, 4);
                sendAll(replies, id, perThread, expected, sentCounts, between);
            }));
        }
        for (Thread t : threads) {
            t.join();
        }
    }

    /** Spreads the threads' sends apart: a seeded number of scheduling points. */
    private static void yieldUpTo(SimScheduler sim, int most) {
        for (int n = sim.nextInt(most + 1); n > 0; n--) {
            sim.yieldPoint();
        }
    }

    /** Parses the wire as structured replies and checks every one against what was sent. */
    private static void assertWireHolds(byte[] wire, List<Expected> expected) {
        Map<Long, Integer> lengths = new HashMap<>();
        for (Expected e : expected) {
            lengths.put(e.cookie(), e.dataLength());
        }
        ByteBuffer b = ByteBuffer.wrap(wire);
        int seen = 0;
        while (b.hasRemaining()) {
            assertEquals(Protocol.STRUCTURED_REPLY_MAGIC, b.getInt(), "a reply starts at " + (b.position() - 4));
            b.getShort();
            int type = b.getShort();
            long cookie = b.getLong();
            int length = b.getInt();
            Integer dataLength = lengths.remove(cookie);
            assertTrue(dataLength != null, "cookie " + cookie + " unexpected or twice");
            if (dataLength == 0) {
                assertEquals(Protocol.REPLY_TYPE_NONE, type);
                assertEquals(0, length);
            } else {
                assertEquals(Protocol.REPLY_TYPE_OFFSET_DATA, type);
                assertEquals(8 + dataLength, length);
                assertEquals(4096 * cookie, b.getLong());
                for (int k = 0; k < dataLength; k++) {
                    assertEquals((byte) cookie, b.get(), "byte " + k + " of cookie " + cookie);
                }
            }
            seen++;
        }
        assertEquals(expected.size(), seen, "replies missing: " + lengths.keySet());
    }

    private static void assertEachSentOnce(Map<Long, AtomicInteger> sentCounts, int perThread) {
        assertEquals(THREADS * perThread, sentCounts.size());
        sentCounts.forEach((cookie, n) -> assertEquals(1, n.get(), "sent callbacks of cookie " + cookie));
    }

    /** One reply a thread makes the last sends race each other most; five let the queue grow behind a write. */
    @ParameterizedTest
    @ValueSource(ints = {1, PER_THREAD})
    void seededSchedulesDeliverEveryReplyOnceWholeAndReleaseItAfterItsBytes(int perThread) {
        assumeTrue(SimScheduler.available(), "needs --add-opens java.base/java.lang=ALL-UNNAMED");
        Simulation.Exploration x = Simulation.explore(1, 1000, 1_000_000, sim -> {
            // Half the writes take everything (a drain pass is then short), half only a part.
            ShortWritingChannel ch = new ShortWritingChannel(n -> sim.nextInt(2) == 0 ? n
                    : 1 + sim.nextInt(Math.min(n, 96)), sim::yieldPoint, -1);
            Replies replies = new Replies(ch, true, () -> sim.nextInt(2) == 0);
            replies.raceWindow = sim::yieldPoint;
            List<Expected> expected = new ArrayList<>();
            Map<Long, AtomicInteger> sentCounts = new HashMap<>();
            sendOnThreads(sim, replies, perThread, expected, sentCounts, () -> yieldUpTo(sim, 4));
            assertWireHolds(ch.wire.toByteArray(), expected);
            assertEachSentOnce(sentCounts, perThread);
        });
        assertEquals(null, x.failed(), () -> "seed " + x.failed().seed() + ": " + x.failed().failure());
        assertTrue(x.distinct() > 900, x.distinct() + " distinct interleavings of " + x.runs());
    }

    @Test
    void repliesQueuedDuringAWriteGoOutTogetherInTheNext() throws Exception {
        // The first reply's write finds the socket full until every other thread has queued its replies.
        int others = (THREADS - 1) * PER_THREAD;
        CountDownLatch writing = new CountDownLatch(1);
        CountDownLatch othersQueued = new CountDownLatch(others);
        ShortWritingChannel ch = new ShortWritingChannel(n -> n, () -> {
            if (writing.getCount() > 0) {
                writing.countDown();
                try {
                    othersQueued.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }, -1);
        Replies replies = new Replies(ch, true, () -> false);
        AtomicInteger firstSent = new AtomicInteger();
        Thread first = Thread.ofVirtual().start(() -> replies.ok(1_000, firstSent::incrementAndGet));
        writing.await();
        List<Expected> expected = new ArrayList<>();
        Map<Long, AtomicInteger> sentCounts = new HashMap<>();
        List<Thread> threads = new ArrayList<>();
        for (int t = 1; t < THREADS; t++) {
            int id = t;
            threads.add(Thread.ofVirtual().start(() -> sendAll(replies, id, PER_THREAD, expected, sentCounts,
                    othersQueued::countDown)));
        }
        for (Thread t : threads) {
            t.join();
        }
        first.join();
        expected.add(new Expected(1_000, 0));
        assertWireHolds(ch.wire.toByteArray(), expected);
        assertEquals(1, firstSent.get());
        assertEquals(others, sentCounts.size());
        sentCounts.forEach((cookie, n) -> assertEquals(1, n.get(), "sent callbacks of cookie " + cookie));
        assertEquals(2, ch.writes.get(), "writes for " + (others + 1) + " replies");
    }

    @Test
    void afterAFailedWriteEveryReplyIsStillReleasedAndNoneWaits() {
        assumeTrue(SimScheduler.available(), "needs --add-opens java.base/java.lang=ALL-UNNAMED");
        int perThread = PER_THREAD;
        Simulation.Exploration x = Simulation.explore(1, 300, 1_000_000, sim -> {
            ShortWritingChannel ch = new ShortWritingChannel(n -> 1 + sim.nextInt(Math.min(n, 200)),
                    sim::yieldPoint, 700);
            Replies replies = new Replies(ch, true, () -> true);
            replies.raceWindow = sim::yieldPoint;
            List<Expected> expected = new ArrayList<>();
            Map<Long, AtomicInteger> sentCounts = new HashMap<>();
            sendOnThreads(sim, replies, perThread, expected, sentCounts, sim::yieldPoint);
            assertEachSentOnce(sentCounts, perThread);
            assertTrue(ch.wire.size() >= 700 && ch.wire.size() < 700 + 200, "wire holds " + ch.wire.size());
        });
        assertEquals(null, x.failed(), () -> "seed " + x.failed().seed() + ": " + x.failed().failure());
    }

    /**
     * A structured read of no bytes is answered with NBD_REPLY_TYPE_NONE and DONE, as qemu-nbd answers it: an empty
     * OFFSET_DATA chunk made libnbd drop the connection ("range of structured reply is out of bounds").
     */
    @Test
    void anEmptyStructuredReadIsAnsweredWithoutADataChunk() {
        ShortWritingChannel ch = new ShortWritingChannel(n -> n, () -> { }, -1);
        new Replies(ch, true, () -> false).data(7, 4096, ByteBuffer.allocate(0), () -> { });
        ByteBuffer wire = ByteBuffer.wrap(ch.wire.toByteArray());
        assertEquals(20, wire.remaining());
        assertEquals(Protocol.STRUCTURED_REPLY_MAGIC, wire.getInt());
        assertEquals(Protocol.REPLY_FLAG_DONE, wire.getShort());
        assertEquals(Protocol.REPLY_TYPE_NONE, wire.getShort());
        assertEquals(7, wire.getLong());
        assertEquals(0, wire.getInt());
    }
}
