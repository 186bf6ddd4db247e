package io.github.qcowloom.nbd;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageFormat;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.UnixDomainSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;

/**
 * An NBD server alone in a JVM, for tests that need its heap bounded (-Xmx): serves IMAGE read-write on SOCKET
 * with the default limits (the stop grace given in milliseconds) and answers commands on stdin: {@code inflight}
 * prints the bytes of request buffers held, {@code stop} stops the server and prints how long that took, then
 * closes the image and exits.
 */
final class ServerProcess {
    private ServerProcess() {
    }

    public static void main(String[] args) throws Exception {
        Path image = Path.of(args[0]);
        Path socket = Path.of(args[1]);
        Duration grace = Duration.ofMillis(Long.parseLong(args[2]));
        BlockDevice device = ImageFormat.open(image, "qcow2", OpenOptions.readWriteDefaults());
        NbdServer server = NbdServer.start(new Export(device, false), UnixDomainSocketAddress.of(socket),
                ExecutionModel.VIRTUAL, NbdServer.Options.defaults().withStopGrace(grace));
        System.out.println("ready");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            switch (line) {
                case "inflight" -> System.out.println("inflight " + server.inFlightBytes());
                case "stop" -> {
                    long t0 = System.nanoTime();
                    server.stop();
                    System.out.println("stopped " + (System.nanoTime() - t0) / 1_000_000);
                    device.close();
                    System.out.println("closed");
                    return;
                }
                default -> System.out.println("unknown command " + line);
            }
        }
    }
}
