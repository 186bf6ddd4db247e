package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** A qcow2 image served on a Unix socket for one test; {@link #close()} stops it and requires a clean qemu-img check. */
final class Served implements AutoCloseable {
    /** What names the image to qemu-img check: its file, or an encrypted image's secret and options. */
    private final List<String> image;
    final BlockDevice device;
    final NbdServer server;

    private Served(Path image, BlockDevice device, NbdServer server) {
        this(List.of(image.toString()), device, server);
    }

    private Served(List<String> image, BlockDevice device, NbdServer server) {
        this.image = image;
        this.device = device;
        this.server = server;
    }

    static Served start(Path image, Path socket, boolean readOnly, ExecutionModel model) throws IOException {
        return start(image, socket, readOnly, model, NbdServer.Options.defaults());
    }

    static Served start(Path image, Path socket, boolean readOnly, ExecutionModel model, NbdServer.Options options)
            throws IOException {
        OpenOptions o = readOnly ? OpenOptions.readOnlyDefaults() : OpenOptions.readWriteDefaults();
        if (model.loops() > 0) { // the loops' requests go through their own rings
            o = o.withTuning(o.tuning().withStorage(StorageBackend.IO_URING));
        }
        BlockDevice dev = ImageFormat.open(image, "qcow2", o);
        Files.deleteIfExists(socket);
        NbdServer s = NbdServer.start(new Export(dev, readOnly),
                UnixDomainSocketAddress.of(socket), model, options);
        return new Served(image, dev, s);
    }

    /** {@code device}, which the caller opened from {@code image} (and wrapped, say), served on {@code socket}. */
    static Served serve(Path image, BlockDevice device, boolean readOnly, Path socket) throws IOException {
        return serve(List.of(image.toString()), device, readOnly, socket);
    }

    /** {@link #serve(Path, BlockDevice, boolean, Path)} of an image qemu-img check opens by {@code qemuImgArgs}. */
    static Served serve(List<String> qemuImgArgs, BlockDevice device, boolean readOnly, Path socket)
            throws IOException {
        Files.deleteIfExists(socket);
        NbdServer s = NbdServer.start(new Export(device, readOnly), UnixDomainSocketAddress.of(socket),
                ExecutionModel.VIRTUAL, NbdServer.Options.defaults());
        return new Served(qemuImgArgs, device, s);
    }

    /** The image served on TCP 127.0.0.1 (an ephemeral port), requiring TLS with {@code tls} unless null. */
    static Served startTcp(Path image, boolean readOnly, TlsCredentials tls) throws IOException {
        OpenOptions o = readOnly ? OpenOptions.readOnlyDefaults() : OpenOptions.readWriteDefaults();
        BlockDevice dev = ImageFormat.open(image, "qcow2", o);
        NbdServer s = NbdServer.start(new Export(dev, readOnly),
                new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), ExecutionModel.VIRTUAL,
                NbdServer.Options.defaults(), tls);
        return new Served(image, dev, s);
    }

    /** The port of a TCP server. */
    int port() {
        return ((InetSocketAddress) server.address()).getPort();
    }

    String uri() {
        return server.uri();
    }

    @Override
    public void close() throws IOException {
        server.stop();
        device.close();
        List<String> check = new ArrayList<>(List.of("qemu-img", "check"));
        check.addAll(image);
        Qemu.Result r = Qemu.exec(check);
        assertEquals(0, r.exitCode(), "qemu-img check after serving: " + r.stdout() + r.stderr());
    }
}
