package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.os.EventFds;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.testing.OpenDescriptors;
import io.github.qcowloom.testing.RingDriver;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.Tuple.Tuple2;

/**
 * A front end that sends what it likes: sequences of vhost-user messages framed as the protocol frames them but
 * with their values drawn at random (ring indexes and sizes, ring addresses in and out of the shared memory, memory
 * tables of up to nine regions with too few, too many or no descriptors, features, config ranges, the version
 * flag), requests the server does not know, and kicks of rings whose memory holds garbage; half of them after
 * QEMU's whole start-up, so that they meet running rings. Whatever came before, the server must answer every
 * request that has a reply (the GET_ ones) and acknowledge every other that asks for it once REPLY_ACK is agreed,
 * in order, and send nothing else, or hang up; never leave the front end waiting (QEMU would wait forever for an
 * acknowledgement owed); then serve a well-behaved front end; and leave no descriptor open. The server's warnings
 * for what it refused are expected in the output.
 */
class VhostUserHostileFrontEndProperties {
    private static final int QUEUES = 4;
    private static final int DISK = 1 << 20;
    /** How long a front end may wait for any answer: the server answers in microseconds. */
    private static final long PATIENCE_SECONDS = 10;
    /** The requests that always have a reply (the others, an acknowledgement if REPLY_ACK and NEED_REPLY). */
    private static final Set<Integer> REPLIED = Set.of(VhostUser.GET_FEATURES, VhostUser.GET_PROTOCOL_FEATURES,
            VhostUser.GET_VRING_BASE, VhostUser.GET_QUEUE_NUM, VhostUser.GET_CONFIG, VhostUser.GET_MAX_MEM_SLOTS);

    /** What a step sends with its message. */
    enum Descriptors { NONE, EVENTFD, MEMFD, TWO_MEMFDS }

    /**
     * One step: a message ({@code request} > 0), or with {@code request} 0 garbage written over the first rings'
     * memory from {@code seed} and a kick of every ring given an eventfd so far.
     */
    record Step(int request, int flags, byte[] payload, Descriptors fds, long seed) {
        @Override
        public String toString() {
            return request == 0 ? "garbage+kick(" + seed + ")" : VhostUser.name(request) + "/" + request + " flags 0x"
                    + Integer.toHexString(flags) + " " + HexFormat.of().formatHex(payload) + " " + fds;
        }
    }

    @Property(tries = 150)
    void whateverAFrontEndSendsTheServerAnswersOrHangsUpThenServesTheNext(@ForAll boolean startedFirst,
            @ForAll("sessions") List<Step> steps) throws Exception {
        Path dir = Files.createTempDirectory("vhost-hostile");
        MemoryStorage storage = new MemoryStorage();
        storage.setLength(DISK);
        long before = OpenDescriptors.count();
        try (RawImage disk = new RawImage(storage); VhostUserBlkServer server = VhostUserBlkServer.start(
                dir.resolve("s"), disk, VirtioBlkConfig.defaults().withNumQueues(QUEUES), ExecutionModel.VIRTUAL)) {
            long serving = OpenDescriptors.count();
            within("the hostile front end", opened -> hostile(server.socket(), opened, startedFirst, steps));
            within("the next front end", opened -> wellBehaved(server.socket(), opened));
            OpenDescriptors.await(serving);
        } finally {
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
        OpenDescriptors.await(before);
    }

    /** A front end's session; it adds each front end it opens to {@code opened}. */
    private interface Session<T> {
        T run(List<VhostUserFrontEnd> opened) throws Exception;
    }

    /**
     * Runs {@code session} on a thread of its own and fails if it is still waiting for the server after the patience,
     * once its sockets are shut down (a read blocked in recvmsg returns then; an interrupt would not end it).
     */
    private static <T> T within(String who, Session<T> session) throws Exception {
        List<VhostUserFrontEnd> opened = new CopyOnWriteArrayList<>();
        ExecutorService executor = Executors.newSingleThreadExecutor(
                Thread.ofPlatform().name("front-end").daemon().factory());
        try {
            Future<T> done = executor.submit(() -> session.run(opened));
            try {
                return done.get(PATIENCE_SECONDS, TimeUnit.SECONDS);
            } catch (TimeoutException e) {
                for (VhostUserFrontEnd fe : opened) {
                    fe.shutdown();
                }
                throw new AssertionError(who + " was left waiting for the server", e);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof Exception x) {
                    throw x;
                }
                throw new AssertionError(e.getCause());
            }
        } finally {
            executor.shutdownNow();
        }
    }

    /**
     * Sends the steps, then GET_QUEUE_NUM, and reads the replies until that one's or the server hangs up. If it
     * answers, it took every step, so it owes exactly {@link #repliesOwed} in order. Returns whether it answered (in
     * 3000 tries, 8% of the sessions; the rest were refused on the way, 57% of them after the start-up).
     */
    private static boolean hostile(Path socket, List<VhostUserFrontEnd> opened, boolean startedFirst,
            List<Step> steps) throws IOException {
        List<Integer> kicks = new ArrayList<>(); // this session's own; the front end closes those of its start-up
        List<Integer> owed = repliesOwed(startedFirst, steps);
        try (VhostUserFrontEnd fe = new VhostUserFrontEnd(socket)) {
            opened.add(fe);
            if (startedFirst) {
                fe.start(2, 16, true); // a fresh server takes it all
            }
            try {
                for (Step step : steps) {
                    send(fe, step, kicks);
                }
                fe.send(VhostUser.GET_QUEUE_NUM, 0, new byte[0]);
                List<Integer> answered = new ArrayList<>();
                VhostUserFrontEnd.Reply last = null;
                while (last == null || last.request() != VhostUser.GET_QUEUE_NUM
                        || answered.size() < owed.size()) {
                    last = fe.receive();
                    if (last == null) {
                        return false;
                    }
                    answered.add(last.request());
                    assertTrue(answered.size() <= owed.size(), "more replies than owed: " + answered);
                }
                assertEquals(owed, answered, "the replies, in order");
                assertEquals(QUEUES, last.payload().getLong(0), "queues");
                return true;
            } catch (IOException hungUp) {
                return false; // the server closed the connection under a send or a receive: its refusal
            } finally {
                for (int fd : kicks) {
                    EventFds.close(fd);
                }
            }
        }
    }

    /**
     * The replies a server that took every step owes, in order: one to each GET_ request, an acknowledgement to each
     * other that sets NEED_REPLY while REPLY_ACK is agreed (from the start-up's agreement, then as each
     * SET_PROTOCOL_FEATURES says, its own acknowledgement included; RESET_OWNER keeps it), and GET_QUEUE_NUM's last.
     */
    private static List<Integer> repliesOwed(boolean startedFirst, List<Step> steps) {
        boolean replyAck = startedFirst; // the start-up agrees to every protocol feature offered
        List<Integer> owed = new ArrayList<>();
        for (Step step : steps) {
            if (step.request() == VhostUser.SET_PROTOCOL_FEATURES && step.payload().length == 8) {
                long features = ByteBuffer.wrap(step.payload()).order(ByteOrder.nativeOrder()).getLong(0);
                replyAck = (features & (1L << VhostUser.PROTOCOL_F_REPLY_ACK)) != 0;
            }
            if (REPLIED.contains(step.request())) {
                owed.add(step.request());
            } else if (step.request() != 0 && replyAck && (step.flags() & VhostUser.FLAG_NEED_REPLY) != 0) {
                owed.add(step.request());
            }
        }
        owed.add(VhostUser.GET_QUEUE_NUM);
        return owed;
    }

    private static void send(VhostUserFrontEnd fe, Step step, List<Integer> kicks) throws IOException {
        if (step.request() == 0) {
            Random garbage = new Random(step.seed());
            long end = VhostUserFrontEnd.GUEST_BASE + 2L * VhostUserFrontEnd.QUEUE_SPAN;
            for (long a = VhostUserFrontEnd.GUEST_BASE; a < end; a += 8) {
                fe.memory.writeLe64(a, garbage.nextInt(4) == 0 ? garbage.nextLong() : garbage.nextInt(64));
            }
            for (List<Integer> given : List.of(fe.kicks, kicks)) {
                for (int kick : given) {
                    EventFds.signal(kick);
                }
            }
            return;
        }
        switch (step.fds()) {
            case NONE -> fe.send(step.request(), step.flags(), step.payload());
            case EVENTFD -> {
                int fd = EventFds.create();
                kicks.add(fd); // kept: a ring may take it for its kick, and later steps kick it
                fe.send(step.request(), step.flags(), step.payload(), fd);
            }
            case MEMFD -> fe.send(step.request(), step.flags(), step.payload(), fe.memfd());
            case TWO_MEMFDS -> fe.send(step.request(), step.flags(), step.payload(), fe.memfd(), fe.memfd());
        }
    }

    /** QEMU's start-up, one write and its read back on each of two queues, a flush, and the rings stopped. */
    private static Void wellBehaved(Path socket, List<VhostUserFrontEnd> opened) throws IOException {
        try (VhostUserFrontEnd fe = new VhostUserFrontEnd(socket)) {
            opened.add(fe);
            fe.start(2, 16, true);
            for (int q = 0; q < 2; q++) {
                RingDriver ring = fe.rings.get(q);
                byte[] data = new byte[4096];
                new Random(q).nextBytes(data);
                assertEquals(VirtioBlk.S_OK, fe.request(q, VirtioBlk.T_OUT, 8L * q, ring.readable(data), q == 1));
                RingDriver.Buf back = ring.writable(4096);
                assertEquals(VirtioBlk.S_OK, fe.request(q, VirtioBlk.T_IN, 8L * q, back, q == 0));
                assertEquals(HexFormat.of().formatHex(data), HexFormat.of().formatHex(ring.bytes(back)));
                assertEquals(VirtioBlk.S_OK, fe.request(q, VirtioBlk.T_FLUSH, 0, null, false));
                fe.stop(q);
            }
        }
        return null;
    }

    @Provide
    Arbitrary<List<Step>> sessions() {
        return step().list().ofMinSize(1).ofMaxSize(14);
    }

    private static Arbitrary<Step> step() {
        // Random flags may carry another version, which the server refuses.
        Arbitrary<Integer> flags = Arbitraries.oneOf(Arbitraries.just(0), Arbitraries.just(VhostUser.FLAG_NEED_REPLY),
                Arbitraries.integers().between(0, 0xff));
        return Arbitraries.frequencyOf(List.of(
                freq(3, Arbitraries.of(VhostUser.GET_FEATURES, VhostUser.GET_PROTOCOL_FEATURES,
                        VhostUser.GET_QUEUE_NUM, VhostUser.GET_MAX_MEM_SLOTS, VhostUser.SET_OWNER,
                        VhostUser.RESET_OWNER).map(r -> new Step(r, 0, new byte[0], Descriptors.NONE, 0))),
                freq(3, Arbitraries.of(VhostUser.SET_FEATURES, VhostUser.SET_PROTOCOL_FEATURES).flatMap(r ->
                        features().map(v -> new Step(r, 0, u64(v), Descriptors.NONE, 0)))),
                freq(4, memTable()),
                freq(6, Arbitraries.of(VhostUser.SET_VRING_NUM, VhostUser.SET_VRING_BASE, VhostUser.GET_VRING_BASE,
                        VhostUser.SET_VRING_ENABLE).flatMap(r -> Arbitraries.integers().between(0, QUEUES + 1)
                        .flatMap(q -> ringNumber().map(n -> new Step(r, 0, state(q, n), Descriptors.NONE, 0))))),
                freq(4, ringAddress()),
                freq(5, Arbitraries.of(VhostUser.SET_VRING_KICK, VhostUser.SET_VRING_CALL, VhostUser.SET_VRING_ERR)
                        .flatMap(r -> Arbitraries.integers().between(0, QUEUES + 1).flatMap(q ->
                                Arbitraries.of(Descriptors.EVENTFD, Descriptors.NONE, Descriptors.MEMFD).flatMap(d ->
                                        Arbitraries.of(0L, (long) VhostUser.VRING_NOFD).map(nofd ->
                                                new Step(r, 0, u64(q | nofd), d, 0)))))),
                freq(2, config()),
                freq(2, Arbitraries.integers().between(1, 60).flatMap(r -> flags.flatMap(f ->
                        Arbitraries.bytes().array(byte[].class).ofMaxSize(48).flatMap(p ->
                                Arbitraries.of(Descriptors.class).map(d -> new Step(r, f, p, d, 0)))))),
                freq(3, Arbitraries.longs().map(seed -> new Step(0, 0, new byte[0], Descriptors.NONE, seed)))));
    }

    private static Tuple2<Integer, Arbitrary<Step>> freq(int weight, Arbitrary<Step> a) {
        return Tuple.of(weight, a);
    }

    /** Features as a front end would ask them (what the server offers, or some of it), or any bits. */
    private static Arbitrary<Long> features() {
        long offered = VirtioBlk.bit(VirtioBlk.F_VERSION_1) | VirtioBlk.bit(VirtioBlk.F_RING_INDIRECT_DESC)
                | VirtioBlk.bit(VirtioBlk.F_FLUSH) | VirtioBlk.bit(VirtioBlk.F_MQ) | VirtioBlk.bit(VirtioBlk.F_BLK_SIZE)
                | VirtioBlk.bit(VirtioBlk.F_RING_EVENT_IDX) | VhostUser.F_PROTOCOL_FEATURES;
        return Arbitraries.oneOf(Arbitraries.just(offered), Arbitraries.longs().map(v -> v & offered),
                Arbitraries.just((1L << VhostUser.PROTOCOL_F_MQ) | (1L << VhostUser.PROTOCOL_F_REPLY_ACK)
                        | (1L << VhostUser.PROTOCOL_F_CONFIG)), Arbitraries.longs());
    }

    /** Ring sizes: powers of two in and out of bounds, zero, and any 32-bit number. */
    private static Arbitrary<Integer> ringNumber() {
        return Arbitraries.oneOf(Arbitraries.of(0, 1, 2, 16, 64, 256, 1024, 32768, 65536, 100),
                Arbitraries.integers());
    }

    /** SET_MEM_TABLE: up to nine regions, each the real one, a part of it or any numbers, with 0-2 memfds. */
    private static Arbitrary<Step> memTable() {
        Arbitrary<long[]> region = Arbitraries.oneOf(
                Arbitraries.just(new long[] {VhostUserFrontEnd.GUEST_BASE, VhostUserFrontEnd.RAM,
                        VhostUserFrontEnd.USER_BASE, VhostUserFrontEnd.MMAP_OFFSET}),
                Arbitraries.integers().between(0, 8).map(k -> new long[] {VhostUserFrontEnd.GUEST_BASE + k * 4096L,
                        4096L << k, VhostUserFrontEnd.USER_BASE + k * 4096L, VhostUserFrontEnd.MMAP_OFFSET}),
                Arbitraries.longs().array(long[].class).ofSize(4));
        return region.list().ofMaxSize(9).flatMap(regions -> Arbitraries.of(Descriptors.NONE, Descriptors.MEMFD,
                Descriptors.TWO_MEMFDS).flatMap(d -> Arbitraries.of(true, false).map(padded -> {
                    ByteBuffer b = ByteBuffer.allocate(8 + 32 * regions.size()).order(ByteOrder.nativeOrder())
                            .putInt(padded ? regions.size() : regions.size() + 1).putInt(0);
                    for (long[] r : regions) {
                        for (long v : r) {
                            b.putLong(v);
                        }
                    }
                    return new Step(VhostUser.SET_MEM_TABLE, VhostUser.FLAG_NEED_REPLY, b.array(), d, 0);
                })));
    }

    /** SET_VRING_ADDR: the addresses the well-behaved front end uses for ring {@code q}, shifted, or any. */
    private static Arbitrary<Step> ringAddress() {
        return Arbitraries.integers().between(0, QUEUES + 1).flatMap(q -> Arbitraries.oneOf(
                Arbitraries.longs().between(-64, 64).map(shift -> {
                    long base = VhostUserFrontEnd.user(VhostUserFrontEnd.GUEST_BASE
                            + (long) Math.min(q, 1) * VhostUserFrontEnd.QUEUE_SPAN);
                    return new long[] {base + shift, base + 8192 + shift, base + 4096 + shift};
                }),
                Arbitraries.longs().array(long[].class).ofSize(3)).map(a -> {
                    ByteBuffer b = ByteBuffer.allocate(40).order(ByteOrder.nativeOrder()).putInt(q).putInt(0)
                            .putLong(a[0]).putLong(a[1]).putLong(a[2]).putLong(0);
                    return new Step(VhostUser.SET_VRING_ADDR, VhostUser.FLAG_NEED_REPLY, b.array(),
                            Descriptors.NONE, 0);
                }));
    }

    /** GET_CONFIG and SET_CONFIG over any offset and size. */
    private static Arbitrary<Step> config() {
        return Arbitraries.of(VhostUser.GET_CONFIG, VhostUser.SET_CONFIG).flatMap(r -> Arbitraries.integers()
                .between(0, 300).flatMap(offset -> Arbitraries.integers().between(0, 300).map(size -> {
                    ByteBuffer b = ByteBuffer.allocate(12 + Math.min(size, 64)).order(ByteOrder.nativeOrder())
                            .putInt(offset).putInt(size).putInt(0);
                    return new Step(r, 0, b.array(), Descriptors.NONE, 0);
                })));
    }

    private static byte[] u64(long v) {
        return VhostUserFrontEnd.u64(v);
    }

    private static byte[] state(int index, int num) {
        return VhostUserFrontEnd.state(index, num);
    }
}
