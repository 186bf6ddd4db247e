package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.image.ImageCreator;
import java.io.File;
import java.net.ConnectException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The socket file of {@code serve -k} appears only once it listens: a client that waits for the file and connects
 * at once (as scripts around qemu-nbd do) is never refused. Before, the JDK made the file at its bind and listened
 * up to milliseconds later in a new JVM, and such a client was refused in most starts. Each round is a server JVM
 * of its own, watched from here as closely as a loop can; a second server on the same socket is refused, and the
 * name the socket was bound at first is gone.
 */
class ServeSocketReadyTest {
    private static final int ROUNDS = 4;

    @TempDir
    Path dir;

    private List<String> names() throws java.io.IOException {
        try (var names = Files.list(dir)) {
            return names.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void theSocketAppearsListening() throws Exception {
        Path image = dir.resolve("d.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(1 << 20));
        Path socket = dir.resolve("s.sock");
        for (int round = 0; round < ROUNDS; round++) {
            List<String> command = NbdProcess.ourServe(socket, "-t", "-r", "-f", "qcow2", image.toString());
            Process server = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
                while (!Files.exists(socket)) {
                    if (System.nanoTime() > deadline || !server.isAlive()) {
                        fail("round " + round + ": no socket");
                    }
                    Thread.onSpinWait();
                }
                try (SocketChannel client = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                    client.connect(UnixDomainSocketAddress.of(socket));
                } catch (ConnectException e) {
                    fail("round " + round + ": the socket was there before it listened: " + e.getMessage());
                }
                if (round == 0) {
                    Cli.Run second = Cli.ours("serve", "-k", socket.toString(), "-r", "-f", "qcow2",
                            image.toString());
                    assertEquals(1, second.code());
                    assertEquals("qcow2-loom: Address already in use\n", second.err());
                }
                // The name bound first goes right after the link: the client may have been quicker than that.
                while (!names().equals(List.of("d.qcow2", "s.sock")) && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                }
                assertEquals(List.of("d.qcow2", "s.sock"), names());
            } finally {
                server.destroy();
                assertTrue(server.waitFor(60, TimeUnit.SECONDS));
                Files.deleteIfExists(socket);
            }
        }
    }
}
