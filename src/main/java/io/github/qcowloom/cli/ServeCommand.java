package io.github.qcowloom.cli;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.DetectZeroes;
import io.github.qcowloom.api.DiscardPolicy;
import io.github.qcowloom.api.ImageException;
import io.github.qcowloom.api.ImageLocking;
import io.github.qcowloom.api.OpenFailures;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.ImageFormat;
import io.github.qcowloom.image.OffsetView;
import io.github.qcowloom.nbd.Export;
import io.github.qcowloom.nbd.NbdServer;
import io.github.qcowloom.nbd.TlsCredentials;
import io.github.qcowloom.virtio.VhostUserBlk;
import io.github.qcowloom.virtio.VirtioBlkConfig;
import java.io.Closeable;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnknownHostException;
import java.net.UnixDomainSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code serve [-k PATH | [-b ADDR] [-p N]] [-t] [--fork] [--pid-file PATH] [-s] [-o OFFSET] [-n | --cache MODE]
 * [--aio MODE] [--discard MODE] [--detect-zeroes MODE] [-x NAME] [-D TEXT] [-A] [-B BITMAP] [-l SNAPSHOT]
 * [--tls-creds ID|DIR [--tls-verify-peer]] [--insecure] [-r] [--shared N] [--exec auto|virtual|loop:N|pool:N]
 * [--storage B] [--profile P] [--object OBJECTDEF] [-f fmt | --image-opts] FILE}: an NBD server for the image, as
 * qemu-nbd's options say (its export named, described, with its allocation depth, a bitmap or a snapshot; from an
 * offset; over a temporary image; its cache, trims and zeroes; in the background), until SIGINT/SIGTERM, or without
 * {@code -t} until its last client leaves, which stops accepting, finishes in-flight requests, flushes and closes
 * the image cleanly. A non-loopback address serves only with TLS, or with --insecure. With {@code --vhost-user-blk
 * SOCKET [--num-queues N] [--logical-block-size B]} it is a vhost-user-blk back end that QEMU attaches as a
 * virtio-blk disk instead, until SIGINT/SIGTERM.
 */
@Command(description = "Serve an image over NBD (Unix socket, or TCP: 127.0.0.1 unless --bind), "
        + "or as a vhost-user-blk back end (--vhost-user-blk).")
final class ServeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = {"-k", "--socket"}, paramLabel = "PATH", description = "Unix socket to listen on.")
    String socket;

    @Option(names = {"-p", "--port"}, paramLabel = "N", description = "TCP port (default 10809 without --socket).")
    Integer port;

    @Option(names = {"-b", "--bind"}, paramLabel = "ADDR",
            description = "TCP address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all). A non-loopback "
                    + "address needs --tls-creds, or --insecure.")
    String bind;

    @Option(names = "--tls-creds", paramLabel = "ID|DIR",
            description = "Require TLS, with the credentials of --object tls-creds-x509,id=ID,dir=DIR,endpoint=server"
                    + " as qemu-nbd's --tls-creds=ID, or with qemu's x509 files in DIR: ca-cert.pem, server-cert.pem,"
                    + " server-key.pem (optional ca-crl.pem).")
    String tlsCreds;

    @Option(names = "--tls-verify-peer",
            description = "Require clients to present a certificate signed by DIR/ca-cert.pem (qemu's "
                    + "tls-creds-x509 verify-peer=on).")
    boolean tlsVerifyPeer;

    @Option(names = "--insecure",
            description = "Allow serving on a non-loopback address without TLS: anyone who reaches it can read and "
                    + "write the image.")
    boolean insecure;

    @Option(names = "--vhost-user-blk", paramLabel = "SOCKET",
            description = "Serve a vhost-user-blk back end on this Unix socket instead of NBD (Java 22+).")
    String vhostUserBlk;

    @Option(names = "--num-queues", paramLabel = "N",
            description = "vhost-user-blk: number of request queues (default 1), as qemu-storage-daemon's.")
    Integer numQueues;

    @Option(names = "--logical-block-size", paramLabel = "BYTES",
            description = "vhost-user-blk: logical block size shown to the guest (512 to 65536, default 512).")
    Integer logicalBlockSize;

    @Option(names = {"-B", "--bitmap"}, paramLabel = "NAME", description = "Also export persistent bitmap NAME as"
            + " the qemu:dirty-bitmap:NAME metadata context (NBD), as qemu-nbd -B does.")
    String bitmap;

    @Option(names = {"-x", "--export-name"}, paramLabel = "NAME", description = "The export's name, which clients"
            + " must ask for (default: the empty name, as qemu-nbd's).")
    String exportName;

    @Option(names = {"-D", "--description"}, paramLabel = "TEXT", description = "The export's description, listed"
            + " to clients.")
    String description;

    @Option(names = {"-A", "--allocation-depth"}, description = "Also export each extent's depth in the backing"
            + " chain as the qemu:allocation-depth metadata context, as qemu-nbd -A does.")
    boolean allocationDepth;

    @Option(names = {"-l", "--load-snapshot"}, paramLabel = "SNAPSHOT_PARAM", description = "Export internal"
            + " snapshot SNAPSHOT_PARAM of FILE read-only, as qemu-nbd -l: snapshot.id=ID,snapshot.name=NAME (either"
            + " or both), or an id or a name.")
    String loadSnapshot;

    @Option(names = {"-r", "--read-only"}, description = "Export read-only.")
    boolean readOnly;

    @Option(names = {"-o", "--offset"}, paramLabel = "OFFSET", description = "Export the image from byte OFFSET"
            + " on (decimal, 0x hexadecimal or 0 octal), as qemu-nbd -o.")
    String offsetText;

    @Option(names = {"-s", "--snapshot"}, description = "Write to a temporary qcow2 image over FILE (in $TMPDIR,"
            + " else /var/tmp; deleted when the server ends), leaving FILE as it was, as qemu-nbd -s.")
    boolean temporaryOverlay;

    @Option(names = {"-t", "--persistent"}, description = "Keep serving after the last client leaves (NBD; without"
            + " it, as with qemu-nbd, the server exits once a client that reached transmission leaves none behind).")
    boolean persistent;

    @Option(names = "--fork", description = "Serve in the background: return once the server listens (its errors"
            + " before that show here, and the command exits 1), as qemu-nbd --fork.")
    boolean fork;

    @Option(names = "--pid-file", paramLabel = "PATH", description = "Write the server's process id to PATH, held"
            + " locked while it serves, as qemu-nbd --pid-file.")
    Path pidFile;

    @Option(names = "--handshake-limit", paramLabel = "N",
            description = "Drop a client that has not finished the handshake (TLS included) within N seconds, as "
                    + "qemu-nbd's --handshake-limit (default 10; 0 = no limit).")
    Integer handshakeLimit;

    @Option(names = {"-U", "--force-share"}, description = "With --read-only: share the image with writers, as"
            + " qemu-nbd -U.")
    boolean forceShare;

    @Option(names = {"-e", "--shared"}, paramLabel = "N",
            description = "Serve up to N clients at once, as qemu-nbd's --shared (default "
                    + NbdServer.Options.DEFAULT_MAX_CONNECTIONS + "; 0 = unlimited); more wait until one leaves.")
    Integer shared;

    @Option(names = "--exec", description = "Execution model: auto (the default: for NBD loop:1 on io_uring, both "
            + "with O_DIRECT and through the page cache, where they can run, else virtual; for vhost-user-blk loop:1 "
            + "with O_DIRECT through io_uring, else virtual), virtual, loop:N or pool:N.")
    String exec;

    @Option(names = "--storage", paramLabel = "BACKEND", description = "auto (the profile's; auto is io_uring with "
            + "O_DIRECT and for NBD on event loops, else FileChannel), io_uring (FileChannel where it cannot run) or "
            + "filechannel.")
    String storage;

    @Mixin
    ProfileOption profile = new ProfileOption();

    @Mixin
    BlockDeviceFlags blockFlags = new BlockDeviceFlags();

    @Option(names = "-f", description = "Image format (probed when absent).")
    String format;

    @Option(names = "--image-opts", description = ImageOpts.HELP)
    boolean imageOpts;

    @Mixin
    QemuObjects objects = new QemuObjects();

    private ImageOpts image;

    @Parameters(index = "0", paramLabel = "FILE")
    String filename;

    /** {@code -l}'s snapshot, parsed with the options as qemu-nbd parses it; null for none. */
    private SnapshotParam snapshot;

    /** With -s, the temporary image the server writes to, deleted once closed; else null. */
    private Path overlay;

    /** How the line saying the server serves begins (what --fork waits for). */
    private static final String SERVING = "serving ";

    @Override
    public Integer call() throws Exception {
        if (fork && !ServerFork.inChild()) {
            // The server's JVM checks the options again and says its refusals on the stderr it shares.
            return ServerFork.start(spec.commandLine().getOut(), SERVING);
        }
        BlockDeviceFlags.Given block = blockFlags.read(); // qemu-nbd refuses these as it reads them, first
        long offset = offsetText == null ? 0 : offset(offsetText);
        snapshot = loadSnapshot == null ? null : SnapshotParam.parse(loadSnapshot, '`');
        if (vhostUserBlk != null) {
            if (socket != null || port != null || bind != null || shared != null || tlsCreds != null || insecure
                    || bitmap != null || exportName != null || description != null || allocationDepth
                    || persistent) {
                throw new IllegalArgumentException("--vhost-user-blk excludes the NBD options (--socket, --port, "
                        + "--bind, --shared, --tls-creds, --insecure, --bitmap, --export-name, --description, "
                        + "--allocation-depth, --persistent: a vhost-user-blk back end serves until stopped)");
            }
            return serveVhostUserBlk(block, offset);
        }
        for (String given : new String[] {exportName, description}) { // qemu-nbd's NBD_MAX_STRING_SIZE
            if (given != null && given.getBytes(StandardCharsets.UTF_8).length > 4096) {
                throw new IllegalArgumentException((given == exportName ? "Export name '" : "Export description '")
                        + given + "' too long");
            }
        }
        if (numQueues != null || logicalBlockSize != null) {
            throw new IllegalArgumentException("--num-queues and --logical-block-size go with --vhost-user-blk");
        }
        if (socket != null && (port != null || bind != null)) {
            throw new IllegalArgumentException("--socket excludes --port and --bind");
        }
        if (tlsVerifyPeer && tlsCreds == null) {
            throw new IllegalArgumentException("--tls-verify-peer needs --tls-creds");
        }
        InetAddress host = InetAddress.getLoopbackAddress();
        if (bind != null) {
            String a = bind.startsWith("[") && bind.endsWith("]") ? bind.substring(1, bind.length() - 1) : bind;
            try {
                host = InetAddress.getByName(a);
            } catch (UnknownHostException e) {
                throw new IllegalArgumentException("--bind " + bind + ": unknown host or address");
            }
        }
        if (socket == null && !host.isLoopbackAddress() && tlsCreds == null && !insecure) {
            throw new IllegalArgumentException("refusing to serve on " + host.getHostAddress() + " without TLS: "
                    + "anyone who reaches it could read and write the image. Give --tls-creds, or --insecure "
                    + "to serve it in clear anyway");
        }
        TlsCredentials tls = tlsCreds == null ? null : tlsCredentials();
        NbdServer.Options limits = NbdServer.Options.defaults();
        if (shared != null) {
            if (shared < 0) {
                throw new IllegalArgumentException("--shared must be >= 0 (0 = unlimited): " + shared);
            }
            limits = limits.withMaxConnections(shared);
        }
        if (handshakeLimit != null) {
            if (handshakeLimit < 0) {
                throw new IllegalArgumentException("--handshake-limit must be >= 0 (0 = no limit): "
                        + handshakeLimit);
            }
            limits = limits.withHandshakeLimit(Duration.ofSeconds(handshakeLimit));
        }
        OpenOptions options = openOptions(block);
        ExecutionModel model = executionModel(options, true);
        if (model.loops() > 0 && options.tuning().storage() == StorageBackend.AUTO) {
            options = options.withTuning(options.tuning().withStorage(StorageBackend.IO_URING));
        }
        SocketAddress address = socket != null ? UnixDomainSocketAddress.of(socket)
                : new InetSocketAddress(host, port != null ? port : 10809);
        BlockDevice device = openDevice(options, offset);
        NbdServer server;
        try {
            ServedBitmap served = bitmap == null ? null : ServedBitmap.of(device, bitmap);
            server = NbdServer.start(new Export(exportName == null ? "" : exportName, description, device,
                    options.readOnly(), served, allocationDepth, block.writeThrough()),
                    address, model, limits, tls);
        } catch (IOException | RuntimeException e) {
            closeAfter(e, device);
            throw e;
        }
        String security = tls == null ? "" : tls.verifyPeer() ? ", TLS, client certificates required" : ", TLS";
        return untilStopped(device, server::stop, SERVING + filename + " (" + model + security + ") at "
                + server.uri(), persistent ? null : server.lastClientGone());
    }

    /**
     * The credentials --tls-creds names: a tls-creds-x509 object's, as qemu-nbd looks its id up (its verify-peer,
     * or --tls-verify-peer), else those in the folder it names.
     */
    private TlsCredentials tlsCredentials() throws IOException {
        Optional<QemuObjects.TlsObject> object = objects.serverTlsCredentials(tlsCreds);
        if (object.isPresent()) {
            return TlsCredentials.load(object.get().dir(), object.get().verifyPeer() || tlsVerifyPeer);
        }
        if (!Files.isDirectory(Path.of(tlsCreds))) {
            throw new ImageException("Failed to get TLS creds: No TLS credentials with id '" + tlsCreds + "'");
        }
        return TlsCredentials.load(Path.of(tlsCreds), tlsVerifyPeer);
    }

    /** FILE, or with --image-opts the image its options name; parsed on the first call. */
    private ImageOpts image() throws IOException {
        if (image == null) {
            if (imageOpts && format != null) {
                throw new IllegalArgumentException("--image-opts and -f are mutually exclusive"); // qemu-nbd's words
            }
            try {
                image = ImageOpts.of(imageOpts, filename, format, objects);
            } catch (IOException e) {
                throw inQemuNbdWords(e);
            }
        }
        return image;
    }

    /**
     * {@code e}, a failure to open FILE, as qemu-nbd words it: "Failed to blk_new_open 'FILE': " before its open's
     * words, where qemu-img's say "Could not open 'FILE': " (a file that is not there is named by QEMU's file layer
     * too: "...: Could not open 'FILE': No such file or directory").
     */
    private IOException inQemuNbdWords(IOException e) {
        String given = "Could not open '" + filename + "': ";
        String wanted = "Failed to blk_new_open '" + filename + "': ";
        IOException replaced = OpenFailures.replaceContext(e, given, wanted);
        if (replaced != e) {
            return replaced;
        }
        String said = Main.message(e);
        boolean fileLayer = e instanceof NoSuchFileException || e instanceof AccessDeniedException;
        return new IOException(wanted + (said.startsWith(given) && !fileLayer ? said.substring(given.length())
                : said), e);
    }

    /**
     * The open options of the image: read-only or not, the profile, -U (which needs --read-only), the block device
     * flags ({@code --cache} over the profile's O_DIRECT and syncs, {@code --aio} for its storage, the discard
     * policy), and what --image-opts says over them (its {@code read-only=on} exports read-only, its {@code
     * discard} and {@code cache.*} win; its {@code detect-zeroes} does not: qemu-nbd sets the node's from its flag
     * after the open).
     */
    private OpenOptions openOptions(BlockDeviceFlags.Given block) throws IOException {
        boolean readOnly = this.readOnly || snapshot != null; // qemu-nbd: -l implies -r
        if (forceShare && !readOnly) {
            throw new IllegalArgumentException("--force-share needs --read-only");
        }
        OpenOptions options = profile.apply(readOnly ? OpenOptions.readOnlyDefaults()
                : OpenOptions.readWriteDefaults());
        if (block.cache() != null) {
            options = options.withDirect(CacheMode.direct(block.cache()))
                    .withHostSyncs(CacheMode.syncs(block.cache()));
        }
        if (storage != null) {
            if (block.aio() != null) {
                throw new IllegalArgumentException("--aio and --storage both say how the files are read and"
                        + " written: give one");
            }
            options = options.withTuning(options.tuning().withStorage(StorageBackend.parse(storage)));
        }
        DiscardPolicy discards = block.discards();
        ImageOpts named = image();
        try {
            options = named.apply((forceShare ? options.withLocking(ImageLocking.FORCE_SHARE) : options)
                    .withDiscards(discards.withDetectZeroes(DetectZeroes.OFF)), discards.unmap());
            if (block.aio() != null) {
                options = options.withTuning(options.tuning().withStorage(CacheMode.aioBackend(block.aio(),
                        options.direct(), named.path())));
            }
        } catch (IOException e) {
            throw inQemuNbdWords(e);
        }
        // qemu-nbd sets the node's detect-zeroes after its open, unchecked: unmap where --image-opts' discard
        // ignores discards can only keep the clusters (as later QEMU, which drops the unmap there).
        DetectZeroes detect = discards.detectZeroes();
        options = options.withDiscards(options.discards().withDetectZeroes(detect == DetectZeroes.UNMAP
                && !options.discards().unmap() ? DetectZeroes.ON : detect));
        return snapshot != null ? options.withReadOnly(true) : options; // -l: whatever --image-opts says
    }

    /**
     * The model NBD ({@code nbd}) or vhost-user-blk requests run under, as it runs here (what the serving line
     * prints: virtual where loops cannot; said in the log only where asked for).
     */
    private ExecutionModel executionModel(OpenOptions options, boolean nbd) {
        String execution = exec != null ? exec : options.tuning().execution();
        StorageBackend storage = options.tuning().storage();
        ExecutionModel model = nbd ? ExecutionModel.resolveForServer(execution, storage)
                : ExecutionModel.resolve(execution, options.direct(), storage);
        return model.effective("auto".equals(execution));
    }

    /**
     * The image, read as its snapshot where {@code -l} names one (qemu-nbd's bdrv_snapshot_load_tmp); with {@code
     * -s} the temporary image over it. The device's closer deletes a temporary image with {@link #deleteOverlay}.
     */
    private BlockDevice openDevice(OpenOptions options, long offset) throws IOException {
        if (temporaryOverlay && imageOpts) {
            throw new UnsupportedFeatureException("serve -s with --image-opts", "-s with --image-opts is not done"
                    + " (the temporary image would reopen FILE by its name, without its options)");
        }
        ImageOpts image = image();
        BlockDevice device;
        try {
            boolean writable = !options.readOnly() && !temporaryOverlay; // -s: the image itself opens read-only
            String format = image.formatOrProbe(writable ? spec.commandLine().getErr() : null);
            if (temporaryOverlay) {
                long size;
                try (BlockDevice original = image.open(format, options.withReadOnly(true))) {
                    size = original.size();
                }
                overlay = TemporaryOverlay.create(image.path(), format, size);
                device = ImageFormat.open(overlay, "qcow2", options);
            } else {
                device = image.open(image.format() == null ? null : format, options); // probed: raw's guard
            }
        } catch (IOException e) {
            deleteOverlay();
            throw inQemuNbdWords(e);
        }
        try {
            if (snapshot != null) {
                snapshot.load(device);
            }
            return offset == 0 ? device : new OffsetView(device, offset); // qemu-nbd's raw node with an offset
        } catch (IOException | RuntimeException e) {
            closeAfter(e, device);
            throw e;
        }
    }

    /** Closes the device {@code e} left open and deletes the -s temporary image; their failures go with {@code e}. */
    private void closeAfter(Exception e, BlockDevice device) {
        try {
            device.close();
        } catch (IOException | RuntimeException closing) {
            e.addSuppressed(closing);
        }
        try {
            deleteOverlay();
        } catch (IOException deleting) {
            e.addSuppressed(deleting);
        }
    }

    /**
     * {@code -o}'s value as qemu-nbd reads it (qemu_strtou64: no suffix; a minus wraps around), refused in its
     * words, and past 2^63 - 1 in those of QEMU's raw driver, which takes it as a signed number.
     */
    private static long offset(String text) {
        OptionalLong value = QemuNumbers.unsigned(text);
        if (value.isEmpty()) {
            throw new IllegalArgumentException("Invalid offset '" + text + "'");
        }
        if (value.getAsLong() < 0) {
            throw new IllegalArgumentException("Parameter 'offset' expects a non-negative number below 2^64\n"
                    + "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
                    + "and exabytes, respectively.");
        }
        return value.getAsLong();
    }

    /** Deletes the -s temporary image, if any, once nothing has it open. */
    private void deleteOverlay() throws IOException {
        if (overlay != null) {
            Files.deleteIfExists(overlay);
        }
    }

    /**
     * Writes the --pid-file, prints {@code banner} (with --fork, what lets the command return) and waits until
     * SIGINT or SIGTERM, or until {@code lastClientGone} completes (null: never), then stops the server (finishing
     * the requests in flight) and closes the image clean ({@link ServerShutdown}).
     */
    private int untilStopped(BlockDevice device, Closeable stopServer, String banner,
            CompletableFuture<Void> lastClientGone) throws IOException, InterruptedException {
        ServerShutdown shutdown = new ServerShutdown(device, stopServer, this::deleteOverlay);
        PidFile written;
        try {
            written = pidFile == null ? null : PidFile.write(pidFile);
        } catch (IOException e) {
            shutdown.run();
            throw e;
        }
        shutdown.onSignals();
        PrintWriter out = spec.commandLine().getOut();
        out.println(banner);
        out.flush();
        if (lastClientGone != null) {
            shutdown.when(lastClientGone);
        }
        shutdown.await();
        if (written != null) {
            written.close();
        }
        return 0;
    }

    private Integer serveVhostUserBlk(BlockDeviceFlags.Given block, long offset) throws Exception {
        String unavailable = VhostUserBlk.unavailableReason();
        if (unavailable != null) {
            throw new UnsupportedFeatureException(unavailable);
        }
        OpenOptions options = openOptions(block);
        VirtioBlkConfig config = VirtioBlkConfig.defaults().withNumQueues(numQueues != null ? numQueues : 1)
                .withLogicalBlockSize(logicalBlockSize != null ? logicalBlockSize : 512)
                .withReadOnly(options.readOnly()).withWriteThrough(block.writeThrough());
        ExecutionModel model = executionModel(options, false);
        BlockDevice device = openDevice(options, offset);
        VhostUserBlk.Server server;
        try {
            server = VhostUserBlk.serve(Path.of(vhostUserBlk), device, config, model);
        } catch (IOException | RuntimeException e) {
            closeAfter(e, device);
            throw e;
        }
        return untilStopped(device, server::close, SERVING + filename + " (" + model + ", "
                + config.numQueues() + (config.numQueues() == 1 ? " queue" : " queues") + ") as vhost-user-blk at "
                + vhostUserBlk, null);
    }
}
