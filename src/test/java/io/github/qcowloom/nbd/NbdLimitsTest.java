package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.testing.ForwardingBlockDevice;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.net.SocketException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.LongAdder;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The server's limits: connections served at once, bytes a connection holds, and how long stop may take. */
class NbdLimitsTest {
    private static final int KIB = 1 << 10;
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;
    Path img;

    @BeforeEach
    void image() {
        Qemu.assume();
        img = dir.resolve("limits.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", img.toString(), "64M");
    }

    private Served serve(NbdServer.Options options) throws Exception {
        return serve(options, ExecutionModel.VIRTUAL);
    }

    private Served serve(NbdServer.Options options, ExecutionModel model) throws Exception {
        assertEquals(model, model.effective(), "the model runs here");
        return Served.start(img, dir.resolve("s.sock"), false, model, options);
    }

    /** Socket reads made through event loops' rings so far ({@code os.LoopSockets}, of the Java 22+ layer). */
    private static long ringReads() throws ReflectiveOperationException {
        return (long) Class.forName("io.github.qcowloom.os.LoopSockets").getMethod("receives").invoke(null);
    }

    /** Stops the server from another thread; fails if that takes longer than 10 s. */
    private static void stopWithin10s(Served s) throws Exception {
        CompletableFuture<Void> stop = CompletableFuture.runAsync(() -> {
            try {
                s.server.stop();
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        }, Executors.newVirtualThreadPerTaskExecutor());
        try {
            stop.get(10, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            throw new AssertionError("stop did not end the connection", e);
        }
    }

    private static byte[] filled(int n, int value) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) value);
        return b;
    }

    /** Writes {@code n} bytes of {@code value} at {@code offset} and reads them back. */
    private static void writeAndReadBack(RawClient c, long cookie, long offset, int n, int value) throws Exception {
        c.request(Protocol.CMD_WRITE, cookie, offset, n, filled(n, value));
        assertEquals(0, c.reply(cookie));
        c.request(Protocol.CMD_READ, cookie + 1, offset, n, null);
        assertEquals(0, c.reply(cookie + 1));
        assertArrayEquals(filled(n, value), c.read(n).array());
    }

    @Test
    void aClientSilentPastTheHandshakeLimitIsDroppedAndItsSlotServesTheNext() throws Exception {
        NbdServer.Options options = NbdServer.Options.defaults().withMaxConnections(1)
                .withHandshakeLimit(Duration.ofSeconds(1));
        try (Served s = serve(options)) {
            long start = System.nanoTime();
            try (RawClient silent = new RawClient(s.server.address())) { // greeted, then says nothing
                assertTrue(silent.closedByServer(), "a client that never negotiates must be dropped");
                long waited = System.nanoTime() - start;
                assertTrue(waited >= TimeUnit.MILLISECONDS.toNanos(900), "dropped before the limit: " + waited);
            }
            // The only slot is free again: without the limit this client would wait behind the silent one.
            try (RawClient next = new RawClient(s.server.address()).go()) {
                writeAndReadBack(next, 1, 0, 4 * KIB, 0x44);
            }
        }
    }

    @Test
    void clientsBeyondTheLimitWaitUntilOneLeaves() throws Exception {
        try (Served s = serve(NbdServer.Options.defaults().withMaxConnections(2))) {
            ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor();
            try (RawClient a = new RawClient(s.server.address()).go();
                    RawClient b = new RawClient(s.server.address()).go()) {
                // The third connects (the listen backlog takes it) but is not greeted while two are served.
                Future<RawClient> third = ex.submit(() -> new RawClient(s.server.address()));
                try {
                    third.get(500, TimeUnit.MILLISECONDS);
                    throw new AssertionError("a third client was served beside two with --shared 2");
                } catch (TimeoutException expected) {
                    // Waiting, as qemu-nbd's extra clients do.
                }
                writeAndReadBack(a, 1, 0, 4 * KIB, 0x11);
                a.request(Protocol.CMD_DISC, 3, 0, 0, null);
                assertTrue(a.closedByServer());
                // a has left: the third is greeted and served.
                try (RawClient c = third.get(10, TimeUnit.SECONDS).go()) {
                    writeAndReadBack(c, 10, 64 * KIB, 4 * KIB, 0x22);
                    writeAndReadBack(b, 20, 128 * KIB, 4 * KIB, 0x33);
                }
            } finally {
                ex.shutdownNow();
            }
        }
        Qemu.io(img, "read -P 0x11 0 4k", "read -P 0x22 64k 4k", "read -P 0x33 128k 4k");
    }

    @Test
    void aConnectionHoldsAtMostItsBudgetAndLargerRequestsRunAlone() throws Exception {
        long budget = 256 * KIB;
        try (Served s = serve(NbdServer.Options.defaults().withConnectionBudgetBytes(budget));
                RawClient hostile = new RawClient(s.server.address()).go();
                RawClient good = new RawClient(s.server.address()).go()) {
            // 64 READs of 128 KiB (8 MiB of replies) that the client never reads.
            for (int i = 0; i < 64; i++) {
                hostile.request(Protocol.CMD_READ, i, 0, 128 * KIB, null);
            }
            // Requests larger than the budget still run, one at a time, on the other connection.
            writeAndReadBack(good, 1, MIB, 4 * MIB, 0x44);
            writeAndReadBack(good, 3, 0, 4 * KIB, 0x45);
            // Once the good client has gone (its requests all replied), what is held is the hostile one's.
            good.request(Protocol.CMD_DISC, 5, 0, 0, null);
            assertTrue(good.closedByServer());
            long held = s.server.inFlightBytes();
            assertTrue(held <= budget, "in flight: " + held);
        }
        Qemu.io(img, "read -P 0x44 1M 4M");
    }

    /**
     * A client that sends many READs and leaves without reading a reply has the ones still queued dropped: its
     * connection stops taking requests once a reply finds the client gone. (Before, the audit's 2000 READs of 32 MiB were all
     * read from the image, a minute of CPU, while the next client waited under --shared 1.)
     */
    @Test
    void theRequestsOfAClientThatHasGoneAreDropped() throws Exception {
        BlockDevice image = ImageFormat.open(img, "qcow2", OpenOptions.readWriteDefaults());
        LongAdder reads = new LongAdder();
        BlockDevice counting = new ForwardingBlockDevice(image) {
            @Override
            public void read(long offset, ByteBuffer dst) throws IOException {
                reads.increment();
                super.read(offset, dst);
            }
        };
        Path socket = dir.resolve("gone.sock");
        NbdServer server = NbdServer.start(new Export(counting, false), UnixDomainSocketAddress.of(socket),
                ExecutionModel.VIRTUAL, NbdServer.Options.defaults().withMaxConnections(1));
        try {
            int sent = 2000;
            // In one write of 56 000 bytes, which the socket takes at once: written one by one, they filled it.
            ByteBuffer requests = ByteBuffer.allocate(sent * 28);
            for (int i = 0; i < sent; i++) {
                requests.putInt(Protocol.REQUEST_MAGIC).putShort((short) 0).putShort((short) Protocol.CMD_READ)
                        .putLong(i).putLong(0).putInt(4 * MIB);
            }
            try (RawClient gone = new RawClient(server.address()).go()) {
                // No reply can reach it: a client that has gone without leaving unread replies behind (which
                // would reset the connection, ending the server's reading of it by itself).
                gone.ch.shutdownInput();
                gone.send(requests);
            }
            // One connection at a time: the next client is served once the server has let the first go.
            try (RawClient next = new RawClient(server.address()).go()) {
                writeAndReadBack(next, 1, 0, 4 * KIB, 0x47);
            }
            assertTrue(reads.sum() < sent / 4, reads.sum() + " of the " + sent + " READs were served");
        } finally {
            server.stop();
            image.close();
        }
    }

    /** Under loop:1 the connection reads its requests through the loop's ring, where a stop must reach it too. */
    @ParameterizedTest
    @ValueSource(strings = {"virtual", "loop:1"})
    void stopEndsAConnectionWaitingForItsNextRequest(String model) throws Exception {
        Served s = serve(NbdServer.Options.defaults(), ExecutionModel.parse(model));
        try (RawClient idle = new RawClient(s.server.address()).go()) {
            long ringReads = ringReads();
            writeAndReadBack(idle, 1, 0, 64 * KIB, 0x66);
            assertEquals(model.startsWith("loop"), ringReads() > ringReads, "requests read through the loop's ring");
            stopWithin10s(s);
            assertTrue(idle.closedByServer(), "the connection was left open");
        } finally {
            s.close();
        }
        Qemu.io(img, "read -P 0x66 0 64k");
    }

    @ParameterizedTest
    @ValueSource(strings = {"virtual", "loop:1"})
    void stopClosesAClientThatDoesNotReadItsReplies(String model) throws Exception {
        Served s = serve(NbdServer.Options.defaults().withStopGrace(Duration.ofMillis(200)),
                ExecutionModel.parse(model));
        try (RawClient hostile = new RawClient(s.server.address()).go()) {
            hostile.request(Protocol.CMD_WRITE, 1, 0, 64 * KIB, filled(64 * KIB, 0x55));
            assertEquals(0, hostile.reply(1));
            // 32 MiB of replies nobody reads: the first blocks its send once the socket buffers are full.
            for (int i = 0; i < 32; i++) {
                hostile.request(Protocol.CMD_READ, 10 + i, 0, MIB, null);
            }
            stopWithin10s(s);
            // Closed with requests unread: the client sees the end of the stream or a reset.
            try {
                assertTrue(hostile.closedByServer(), "the connection was left open");
            } catch (ExecutionException e) {
                assertInstanceOf(SocketException.class, e.getCause());
            }
        } finally {
            s.close();
        }
        Qemu.io(img, "read -P 0x55 0 64k");
    }
}
