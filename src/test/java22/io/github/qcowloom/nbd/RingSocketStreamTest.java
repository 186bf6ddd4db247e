package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.os.LoopSockets;
import io.github.qcowloom.os.UringLoops;
import io.github.qcowloom.testing.OnThread;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Reads through a loop's ring on a descriptor of our own: the bytes arrive, a close ends a read waiting in the ring
 * (whenever it comes), and the duplicate descriptor is closed exactly once, whatever the order.
 */
class RingSocketStreamTest {
    @TempDir
    Path dir;

    /** Both ends of a Unix socket: [0] the server's (read through the ring), [1] the peer's. */
    private SocketChannel[] pair(int n) throws IOException {
        Path path = dir.resolve("s" + n + ".sock");
        try (ServerSocketChannel listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            listener.bind(UnixDomainSocketAddress.of(path));
            SocketChannel peer = SocketChannel.open(UnixDomainSocketAddress.of(path));
            return new SocketChannel[] {listener.accept(), peer};
        } finally {
            Files.deleteIfExists(path);
        }
    }

    /** Runs {@code task} on a thread of an event loop and returns what it returns. */
    private static <T> T onALoop(ThreadFactory loop, Callable<T> task) throws Exception {
        return OnThread.start(loop, task).get(20, TimeUnit.SECONDS);
    }

    private static long sockets() throws IOException {
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.filter(p -> {
                try {
                    return Files.readSymbolicLink(p).toString().startsWith("socket:");
                } catch (IOException e) {
                    return false; // closed while listed
                }
            }).count();
        }
    }

    @Test
    void offALoopThereIsNoRingStream() throws Exception {
        SocketChannel[] p = pair(0);
        try (SocketChannel server = p[0]; SocketChannel peer = p[1]) {
            assertNull(RingSocketStream.open(p[0]));
        }
    }

    @Test
    void bytesSentArriveThroughTheRingAndTheEndOfTheStreamIsSeen() throws Exception {
        ThreadFactory loop = UringLoops.threadFactory(1, "ring-read");
        SocketChannel[] p = pair(1);
        try (SocketChannel peer = p[1]) {
            long before = LoopSockets.receives();
            String got = onALoop(loop, () -> {
                ByteStream s = RingSocketStream.open(p[0]);
                assertNotNull(s);
                try (s) {
                    ByteBuffer b = ByteBuffer.allocateDirect(64);
                    StringBuilder text = new StringBuilder();
                    // The peer writes once the first read waits in the ring (it finds the socket empty).
                    Thread.ofPlatform().start(() -> {
                        while (LoopSockets.receives() == before) {
                            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(1));
                        }
                        try {
                            p[1].write(ByteBuffer.wrap("hello, ring".getBytes()));
                            p[1].close();
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    });
                    while (s.read(b) >= 0) {
                        b.flip();
                        while (b.hasRemaining()) {
                            text.append((char) b.get());
                        }
                        b.clear();
                    }
                    return text.toString();
                }
            });
            assertEquals("hello, ring", got);
            assertTrue(LoopSockets.receives() > before, "the reads went through the ring");
        }
        assertTrue(!p[0].isOpen(), "closing the stream closes the channel");
    }

    @Test
    void aCloseAtAnyMomentEndsTheReadAndClosesOurDescriptorOnce() throws Exception {
        ThreadFactory loop = UringLoops.threadFactory(1, "ring-read");
        SplittableRandom random = new SplittableRandom(20261204);
        long baseline = sockets();
        for (int round = 0; round < 200; round++) {
            SocketChannel[] p = pair(100 + round);
            long delayNanos = random.nextLong(200_000);
            boolean dataFirst = random.nextBoolean();
            try (SocketChannel peer = p[1]) {
                if (dataFirst) {
                    p[1].write(ByteBuffer.wrap(new byte[] {42}));
                }
                CompletableFuture<ByteStream> opened = new CompletableFuture<>();
                CompletableFuture<String> reader = OnThread.start(loop, () -> {
                    ByteStream s = RingSocketStream.open(p[0]);
                    opened.complete(s);
                    ByteBuffer b = ByteBuffer.allocateDirect(16);
                    String seen = "";
                    try {
                        for (int n = s.read(b); n >= 0; n = s.read(b)) {
                            seen += n + " ";
                        }
                        return seen + "eof";
                    } catch (ClosedChannelException e) {
                        return "closed";
                    }
                });
                ByteStream s = opened.get(10, TimeUnit.SECONDS);
                LockSupport.parkNanos(delayNanos);
                s.close();
                s.close(); // twice: a no-op
                String how = reader.get(10, TimeUnit.SECONDS);
                assertTrue(how.endsWith("eof") || how.endsWith("closed"), how);
                assertEquals("closed", onALoop(loop, () -> {
                    try {
                        return "read " + s.read(ByteBuffer.allocateDirect(1));
                    } catch (ClosedChannelException e) {
                        return "closed";
                    }
                }), "a read after the close");
            }
        }
        assertEquals(baseline, sockets(), "sockets open before and after 200 connections");
    }
}
