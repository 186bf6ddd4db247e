package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.nbd.Export;
import io.github.qcowloom.nbd.NbdServer;
import io.github.qcowloom.virtio.VhostUserBlk;
import io.github.qcowloom.virtio.VirtioBlkConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code serve [--socket PATH | --port N | --vhost-user-blk PATH [--num-queues N] [--logical-block-size B]]
 * [--read-only] [--shared N] [--exec virtual|pool:N] [--profile P] [-f fmt] FILE}: an NBD server, or a
 * vhost-user-blk back end that QEMU attaches as a virtio-blk disk, for the image until SIGINT/SIGTERM, which stops
 * accepting, finishes in-flight requests, flushes and closes the image cleanly.
 */
@Command(name = "serve", description = "Serve an image over NBD (Unix socket, or TCP on 127.0.0.1), or as a "
        + "vhost-user-blk back end (--vhost-user-blk).")
final class ServeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--socket", paramLabel = "PATH", description = "Unix socket to listen on.")
    String socket;

    @Option(names = "--port", paramLabel = "N", description = "TCP port on 127.0.0.1 (default 10809 without --socket).")
    Integer port;

    @Option(names = "--vhost-user-blk", paramLabel = "SOCKET",
            description = "Serve a vhost-user-blk back end on this Unix socket instead of NBD (Java 22+).")
    String vhostUserBlk;

    @Option(names = "--num-queues", paramLabel = "N",
            description = "vhost-user-blk: number of request queues (default 1), as qemu-storage-daemon's.")
    Integer numQueues;

    @Option(names = "--logical-block-size", paramLabel = "BYTES",
            description = "vhost-user-blk: logical block size shown to the guest (512 to 65536, default 512).")
    Integer logicalBlockSize;

    @Option(names = "--read-only", description = "Export read-only.")
    boolean readOnly;

    @Option(names = {"-e", "--shared"}, paramLabel = "N",
            description = "Serve up to N clients at once, as qemu-nbd's --shared (default "
                    + NbdServer.Options.DEFAULT_MAX_CONNECTIONS + "; 0 = unlimited); more wait until one leaves.")
    Integer shared;

    @Option(names = "--exec", description = "Execution model: virtual (default) or pool:N.")
    String exec;

    @Mixin
    ProfileOption profile = new ProfileOption();

    @Option(names = "-f", description = "Image format (probed when absent).")
    String format;

    @Parameters(index = "0", paramLabel = "FILE")
    String filename;

    @Override
    public Integer call() throws Exception {
        if (socket != null && port != null) {
            throw new IllegalArgumentException("--socket and --port are exclusive");
        }
        if (vhostUserBlk != null) {
            if (socket != null || port != null || shared != null) {
                throw new IllegalArgumentException("--vhost-user-blk excludes --socket, --port and --shared");
            }
            return serveVhostUserBlk();
        }
        if (numQueues != null || logicalBlockSize != null) {
            throw new IllegalArgumentException("--num-queues and --logical-block-size go with --vhost-user-blk");
        }
        NbdServer.Options limits = NbdServer.Options.defaults();
        if (shared != null) {
            if (shared < 0) {
                throw new IllegalArgumentException("--shared must be >= 0 (0 = unlimited): " + shared);
            }
            limits = limits.withMaxConnections(shared);
        }
        Path path = Path.of(filename);
        if (!Files.exists(path)) {
            throw new NoSuchFileException(filename);
        }
        OpenOptions base = readOnly ? OpenOptions.readOnlyDefaults() : OpenOptions.readWriteDefaults();
        OpenOptions options = profile.apply(base);
        ExecutionModel model = ExecutionModel.parse(exec != null ? exec : options.tuning().execution());
        SocketAddress address = socket != null ? UnixDomainSocketAddress.of(socket)
                : new InetSocketAddress(InetAddress.getLoopbackAddress(), port != null ? port : 10809);
        BlockDevice device = ImageFormat.open(path, format, options);
        NbdServer server;
        try {
            server = NbdServer.start(new Export(path.getFileName().toString(), device, readOnly), address, model,
                    limits);
        } catch (IOException | RuntimeException e) {
            device.close();
            throw e;
        }
        CountDownLatch closed = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            try (device) {
                server.stop();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } finally {
                closed.countDown();
            }
        }, "serve-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        spec.commandLine().getOut().println("serving " + filename + " (" + model + ") at " + server.uri());
        spec.commandLine().getOut().flush();
        closed.await();
        return 0;
    }

    private Integer serveVhostUserBlk() throws Exception {
        String unavailable = VhostUserBlk.unavailableReason();
        if (unavailable != null) {
            throw new UnsupportedFeatureException(unavailable);
        }
        VirtioBlkConfig config = VirtioBlkConfig.defaults().withNumQueues(numQueues != null ? numQueues : 1)
                .withLogicalBlockSize(logicalBlockSize != null ? logicalBlockSize : 512).withReadOnly(readOnly);
        Path path = Path.of(filename);
        if (!Files.exists(path)) {
            throw new NoSuchFileException(filename);
        }
        OpenOptions base = readOnly ? OpenOptions.readOnlyDefaults() : OpenOptions.readWriteDefaults();
        OpenOptions options = profile.apply(base);
        ExecutionModel model = ExecutionModel.parse(exec != null ? exec : options.tuning().execution());
        BlockDevice device = ImageFormat.open(path, format, options);
        VhostUserBlk.Server server;
        try {
            server = VhostUserBlk.serve(Path.of(vhostUserBlk), device, config, model);
        } catch (IOException | RuntimeException e) {
            device.close();
            throw e;
        }
        CountDownLatch closed = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            try (device) {
                server.close();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } finally {
                closed.countDown();
            }
        }, "serve-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        spec.commandLine().getOut().println("serving " + filename + " (" + model + ", " + config.numQueues()
                + (config.numQueues() == 1 ? " queue" : " queues") + ") as vhost-user-blk at " + vhostUserBlk);
        spec.commandLine().getOut().flush();
        closed.await();
        return 0;
    }
}
