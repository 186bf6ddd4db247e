package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.image.ImageCreator;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.UnixDomainSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A client that sends many 32 MiB READs on several connections and never reads a reply must not take down a
 * server running with a 256 MiB heap: each connection holds at most its byte budget, a well-behaved client beside
 * it is served, and stop returns although the hostile client never reads.
 */
class NbdHostileClientTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;
    /** The server process's stderr (its log, and the JVM's OutOfMemoryError message). */
    Path log;

    @Test
    void hostileReadersPinABoundedBudgetAndAGoodClientIsServedAt256MiBOfHeap() throws Exception {
        Path image = dir.resolve("h.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(64L * MIB));
        Path socket = dir.resolve("h.sock");
        log = dir.resolve("server.log");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        // ExitOnOutOfMemoryError: an OutOfMemoryError in any of the server's threads ends the child at once.
        Process child = new ProcessBuilder(java, "-Xmx256m", "-XX:+ExitOnOutOfMemoryError",
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                ServerProcess.class.getName(), image.toString(), socket.toString(), "500")
                .redirectError(log.toFile()).start();
        List<RawClient> hostile = new ArrayList<>();
        BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
        PrintWriter in = new PrintWriter(child.getOutputStream(), true, StandardCharsets.UTF_8);
        try {
            assertEquals("ready", out.readLine(), this::serverLog);
            UnixDomainSocketAddress address = UnixDomainSocketAddress.of(socket);
            // Three of the four connections the server takes by default: 3 × 14 READs of 32 MiB, 1.3 GiB of
            // replies, none read.
            int connections = NbdServer.Options.DEFAULT_MAX_CONNECTIONS - 1;
            for (int c = 0; c < connections; c++) {
                RawClient h = new RawClient(address).go();
                hostile.add(h);
                for (int i = 0; i < 14; i++) {
                    h.request(Protocol.CMD_READ, i, 0, 32 * MIB, null);
                }
            }
            // Each connection ends up with one 32 MiB reply blocked in its send, the rest waiting for budget.
            long expected = connections * NbdServer.Options.DEFAULT_CONNECTION_BUDGET;
            long inFlight = 0;
            for (int i = 0; i < 200 && inFlight < expected; i++) {
                inFlight = inFlight(in, out);
                if (inFlight < expected) {
                    Thread.sleep(25);
                }
            }
            assertEquals(expected, inFlight, "bytes the hostile connections hold");

            // The well-behaved client writes and reads back, on the fourth connection.
            try (RawClient good = new RawClient(address).go()) {
                for (int round = 0; round < 4; round++) {
                    byte[] data = new byte[MIB];
                    Arrays.fill(data, (byte) (0x30 + round));
                    long offset = (long) (8 + round) * MIB;
                    good.request(Protocol.CMD_WRITE, 100 + round, offset, MIB, data);
                    assertEquals(0, good.reply(100 + round));
                    good.request(Protocol.CMD_READ, 200 + round, offset, MIB, null);
                    assertEquals(0, good.reply(200 + round));
                    assertArrayEquals(data, good.read(MIB).array());
                }
                good.request(Protocol.CMD_FLUSH, 300, 0, 0, null);
                assertEquals(0, good.reply(300));
                // Every request of this connection has given its bytes back before the server closes it.
                good.request(Protocol.CMD_DISC, 301, 0, 0, null);
                assertTrue(good.closedByServer());
            }
            assertEquals(expected, inFlight(in, out), "the hostile connections took more once others were served");

            // stop closes the hostile connections after the grace instead of waiting for them to read.
            in.println("stop");
            String stopped = out.readLine();
            assertNotNull(stopped, this::serverLog);
            assertTrue(stopped.startsWith("stopped "), stopped);
            assertTrue(Long.parseLong(stopped.substring(8)) < 10_000, stopped);
            assertEquals("closed", out.readLine());
            assertTrue(child.waitFor(30, TimeUnit.SECONDS));
            assertEquals(0, child.exitValue());
        } catch (IOException e) {
            // The server closed a connection: it died (an OutOfMemoryError) or dropped a client.
            StringBuilder printed = new StringBuilder();
            if (child.waitFor(10, TimeUnit.SECONDS)) {
                for (String l = out.readLine(); l != null; l = out.readLine()) {
                    printed.append(l).append('\n');
                }
                printed.append("(exit status ").append(child.exitValue()).append(")\n");
            } else {
                printed.append("(nothing: it is still running)\n");
            }
            throw new AssertionError("a client lost its connection; the server process printed: " + printed
                    + serverLog(), e);
        } finally {
            for (RawClient h : hostile) {
                h.close();
            }
            in.close();
            out.close();
            child.destroyForcibly();
            child.waitFor(30, TimeUnit.SECONDS);
        }
        // What the good client wrote is in the image, which closed clean.
        io.github.qcowloom.check.CheckResult r = io.github.qcowloom.check.ImageChecker.check(image, "h.qcow2");
        assertEquals(0, r.corruptions() + r.leaks(), r.messages().toString());
    }

    /** Asks the server process how many bytes its connections hold; fails if the process has died (an OOM). */
    private long inFlight(PrintWriter in, BufferedReader out) throws IOException {
        in.println("inflight");
        String line = out.readLine();
        assertNotNull(line, this::serverLog);
        assertTrue(line.startsWith("inflight "), () -> line + "\n" + serverLog());
        return Long.parseLong(line.substring(9));
    }

    /** What the server process wrote on stderr, for failure messages. */
    private String serverLog() {
        try {
            String s = Files.readString(log);
            return "the server process's stderr:\n" + (s.length() > 4000 ? s.substring(0, 4000) + "..." : s);
        } catch (IOException e) {
            return "no server log: " + e;
        }
    }
}
