package io.github.qcowloom.os;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The JDK's socket pollers do not end up on a loop. In the JDK's default poller mode they are virtual threads
 * started by the first thread that waits on a socket, and inherit its scheduler; when that thread is on a loop,
 * a socket's readiness then waits for whatever holds the loop, for threads that have nothing to do with it. The
 * scenario needs a JVM in which no socket has been waited on yet, so it runs in a child.
 */
@Timeout(value = 60, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class UringLoopPollerTest {
    private static final long HOLD_MILLIS = 1500;

    @Test
    void aBusyLoopDoesNotDelaySocketsOfTheJdksScheduler() throws Exception {
        assertEquals("woke while the loop was held", ChildJvm.verdict(Scenario.class));
    }

    /** In a fresh JVM: the first socket wait on a loop, then a loop held busy, then a socket of the JDK's own. */
    static final class Scenario {
        public static void main(String[] args) throws Exception {
            ThreadFactory loops = UringLoops.threadFactory(1, "poller-test");
            try (ServerSocketChannel server = ServerSocketChannel.open()) {
                server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
                Thread first = loops.newThread(() -> readOne(server));
                first.start();
                try (SocketChannel s = server.accept()) {
                    Thread.sleep(100); // the loop's reader waits on its socket: the process's first such wait
                    s.write(ByteBuffer.wrap(new byte[] {1}));
                }
                first.join();

                AtomicBoolean holding = new AtomicBoolean();
                Thread hold = loops.newThread(() -> {
                    holding.set(true);
                    long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(HOLD_MILLIS);
                    while (System.nanoTime() < until) {
                        Thread.onSpinWait();
                    }
                });
                hold.start();
                while (!holding.get()) {
                    Thread.onSpinWait();
                }
                CompletableFuture<Long> woke = new CompletableFuture<>();
                Thread other = Thread.ofVirtual().start(() -> {
                    readOne(server);
                    woke.complete(System.nanoTime());
                });
                long sentAt;
                try (SocketChannel s = server.accept()) {
                    Thread.sleep(100); // the JDK's reader waits on its socket
                    sentAt = System.nanoTime();
                    s.write(ByteBuffer.wrap(new byte[] {1}));
                    long millis = TimeUnit.NANOSECONDS.toMillis(woke.get(10, TimeUnit.SECONDS) - sentAt);
                    System.out.println(millis < HOLD_MILLIS / 3 ? "woke while the loop was held"
                            : "woke " + millis + " ms after its byte was sent: the JDK's pollers ran on the loop");
                }
                other.join();
                hold.join();
            }
        }

        private static void readOne(ServerSocketChannel server) {
            try (SocketChannel c = SocketChannel.open(server.getLocalAddress())) {
                c.read(ByteBuffer.allocate(1));
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        }
    }
}
