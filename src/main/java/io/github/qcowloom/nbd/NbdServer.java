package io.github.qcowloom.nbd;

import io.github.qcowloom.exec.ExecutionModel;
import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An NBD server for one export on a Unix socket or a TCP port: each connection gets a virtual thread for its
 * handshake and request stream, requests run on the execution model's executor. One client's failure closes only
 * that client's connection.
 *
 * <p>With {@link TlsCredentials} every connection must upgrade with NBD_OPT_STARTTLS before it learns anything
 * about the export ({@link Handshake}, FORCEDTLS); the connection then runs over {@link TlsChannel}, whose
 * buffers are a fixed ~150 KiB per connection (four TLS records in, four out, one decrypted) on top of the byte
 * budget below.
 *
 * <p>What clients can make it hold is bounded by its {@link Options}: at most {@code maxConnections} connections
 * are served at once (more wait in the listen backlog, as with qemu-nbd's {@code --shared}), and each holds at
 * most its byte budget of request buffers (plus one request of up to 32 MiB), however many requests it sends
 * without reading the replies, and 64 KiB of requests read ahead ({@link RequestStream}). The worst case is about
 * {@code maxConnections × max(budget, 32 MiB)}.
 *
 * <p>Lock discipline: no locks of its own. {@code connectionSlots} (a semaphore) counts the connections being
 * served; the concurrent sets are safe to read while connections come and go.
 */
public final class NbdServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(NbdServer.class);

    /**
     * Limits that keep clients from exhausting the server.
     *
     * @param maxConnections connections served at once, as qemu-nbd's {@code --shared}; further clients wait in
     *     the listen backlog until one leaves; 0 = unlimited; with 1, CAN_MULTI_CONN is not advertised
     * @param connectionBudgetBytes bytes of READ replies and WRITE payloads one connection may hold at once; a
     *     request larger than this waits until it is the connection's only one
     * @param stopGrace how long {@link #stop()} lets connections finish their requests and send their replies
     *     before closing them (a client that stops reading would otherwise keep a reply, and stop, waiting forever)
     * @param handshakeLimit how long a client may take from connecting to the end of the handshake (TLS included)
     *     before it is disconnected, as qemu-nbd's {@code --handshake-limit}: a client that connects and says
     *     nothing would otherwise hold one of the {@code maxConnections} forever; zero = no limit
     */
    public record Options(int maxConnections, long connectionBudgetBytes, Duration stopGrace,
            Duration handshakeLimit) {
        /** More than qemu-nbd's 1, as many as nbdcopy opens by default (CAN_MULTI_CONN is advertised unless 1). */
        public static final int DEFAULT_MAX_CONNECTIONS = 4;
        /** One request of the advertised maximum payload, or many smaller ones. */
        public static final long DEFAULT_CONNECTION_BUDGET = Protocol.MAX_PAYLOAD;
        public static final Duration DEFAULT_STOP_GRACE = Duration.ofSeconds(5);
        /** qemu-nbd's default. */
        public static final Duration DEFAULT_HANDSHAKE_LIMIT = Duration.ofSeconds(10);

        public Options {
            if (maxConnections < 0) {
                throw new IllegalArgumentException("maxConnections must be >= 0 (0 = unlimited): " + maxConnections);
            }
            if (connectionBudgetBytes < 1) {
                throw new IllegalArgumentException("connectionBudgetBytes must be >= 1: " + connectionBudgetBytes);
            }
            if (stopGrace.isNegative()) {
                throw new IllegalArgumentException("stopGrace must not be negative: " + stopGrace);
            }
            if (handshakeLimit.isNegative()) {
                throw new IllegalArgumentException("handshakeLimit must not be negative: " + handshakeLimit);
            }
        }

        public static Options defaults() {
            return new Options(DEFAULT_MAX_CONNECTIONS, DEFAULT_CONNECTION_BUDGET, DEFAULT_STOP_GRACE,
                    DEFAULT_HANDSHAKE_LIMIT);
        }

        public Options withMaxConnections(int v) {
            return new Options(v, connectionBudgetBytes, stopGrace, handshakeLimit);
        }

        public Options withConnectionBudgetBytes(long v) {
            return new Options(maxConnections, v, stopGrace, handshakeLimit);
        }

        public Options withStopGrace(Duration v) {
            return new Options(maxConnections, connectionBudgetBytes, v, handshakeLimit);
        }

        public Options withHandshakeLimit(Duration v) {
            return new Options(maxConnections, connectionBudgetBytes, stopGrace, v);
        }
    }

    private final Export export;
    /** Null: no TLS. */
    private final TlsCredentials tls;
    private final ServerSocketChannel listener;
    private final SocketAddress address;
    private final ExecutorService executor;
    /** A connection's reading thread: on an event loop under loop:N, where the requests it starts stay with it. */
    private final ThreadFactory connectionThreads;
    private final Options options;
    /** Free connection slots; null when connections are unlimited. */
    private final Semaphore connectionSlots;
    private final Set<SocketChannel> connections = ConcurrentHashMap.newKeySet();
    private final Set<ByteBudget> budgets = ConcurrentHashMap.newKeySet();
    /** Payload buffers, reused across connections. */
    private final PayloadBuffers buffers = new PayloadBuffers();
    private final Set<Thread> handlers = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean stopped = new AtomicBoolean();
    /** Completed when a client that finished its handshake leaves no connection behind. */
    private final CompletableFuture<Void> lastClientGone = new CompletableFuture<>();
    private final Thread acceptor;

    private NbdServer(Export export, ServerSocketChannel listener, SocketAddress address, ExecutionModel model,
            Options options, TlsCredentials tls) {
        this.export = export;
        this.tls = tls;
        this.listener = listener;
        this.address = address;
        this.executor = model.newExecutor();
        this.connectionThreads = model.requestThreads("nbd-conn");
        this.options = options;
        this.connectionSlots = options.maxConnections() == 0 ? null : new Semaphore(options.maxConnections());
        this.acceptor = Thread.ofVirtual().name("nbd-accept").start(this::acceptLoop);
    }

    /**
     * Binds {@code address} (a {@link UnixDomainSocketAddress} or an {@link InetSocketAddress}) and starts serving
     * with {@link Options#defaults()}. The caller keeps ownership of the export's device: {@link #stop()} flushes
     * it but does not close it.
     */
    public static NbdServer start(Export export, SocketAddress address, ExecutionModel model) throws IOException {
        return start(export, address, model, Options.defaults());
    }

    /** As {@link #start(Export, SocketAddress, ExecutionModel)}, with the given limits. */
    public static NbdServer start(Export export, SocketAddress address, ExecutionModel model, Options options)
            throws IOException {
        return start(export, address, model, options, null);
    }

    /**
     * As {@link #start(Export, SocketAddress, ExecutionModel, Options)}, requiring TLS with {@code tls} (null:
     * no TLS; NBD_OPT_STARTTLS is then refused with NBD_REP_ERR_POLICY).
     */
    public static NbdServer start(Export export, SocketAddress address, ExecutionModel model, Options options,
            TlsCredentials tls) throws IOException {
        ServerSocketChannel ch = address instanceof UnixDomainSocketAddress
                ? ServerSocketChannel.open(StandardProtocolFamily.UNIX) : ServerSocketChannel.open();
        try {
            SocketAddress bound = address; // a socket's own name, not the one it was bound at first
            if (address instanceof UnixDomainSocketAddress u) {
                bindListening(ch, u);
            } else {
                ch.bind(address);
                bound = ch.getLocalAddress(); // with the port TCP chose for port 0
            }
            return new NbdServer(export, ch, bound, model, options, tls);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    /** Sets the names of the sockets {@link #bindListening} binds first apart. */
    private static final AtomicLong STAGED = new AtomicLong();

    /**
     * Binds {@code ch} so that the socket file appears at {@code address} already listening: the JDK's bind makes
     * the file, and its listen follows up to milliseconds later at a first bind, in which a client that waits for
     * the file to appear (as qemu-nbd's users do) was refused. The socket is bound and listening at a name of its
     * own beside it first, then linked to the name asked for (which fails, as a bind there would, if something is
     * there) and its own name removed. Where that name would be too long for a socket, it is bound at the name
     * asked for, as before.
     */
    private static void bindListening(ServerSocketChannel ch, UnixDomainSocketAddress address) throws IOException {
        Path target = address.getPath();
        Path staged = target.resolveSibling(".nbd-" + ProcessHandle.current().pid() + "-" + STAGED.incrementAndGet());
        try {
            Files.deleteIfExists(staged); // left by a process killed before it removed it, whose pid this one has
            ch.bind(UnixDomainSocketAddress.of(staged));
        } catch (IOException e) {
            ch.bind(address); // e.g. a path too long for sun_path once renamed: the plain bind
            return;
        }
        try {
            Files.createLink(target, staged);
        } catch (FileAlreadyExistsException e) {
            throw new BindException("Address already in use"); // the bind's own words
        } catch (UnsupportedOperationException | IOException e) {
            // A file system without hard links: a rename, which would replace a socket there, so only where none is.
            if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
                throw new BindException("Address already in use");
            }
            Files.move(staged, target, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(staged);
        }
    }

    /** The limits this server runs with. */
    public Options options() {
        return options;
    }

    /** Bytes of request buffers all connections hold now (for tests and monitoring). */
    long inFlightBytes() {
        long sum = 0;
        for (ByteBudget b : budgets) {
            sum += b.inFlight();
        }
        return sum;
    }

    /** Connections being served now. */
    int connectionCount() {
        return connections.size();
    }

    /** The bound address (with the actual port when TCP port 0 was asked for). */
    public SocketAddress address() {
        return address;
    }

    /**
     * The NBD URI clients use: {@code nbd+unix:///NAME?socket=PATH} or {@code nbd://HOST:PORT/NAME} (no {@code
     * /NAME} for the empty name), {@code nbds...} with TLS (an IPv6 host in brackets).
     */
    public String uri() {
        String scheme = tls != null ? "nbds" : "nbd";
        String name = percentEncoded(export.name());
        if (address instanceof UnixDomainSocketAddress u) {
            return scheme + "+unix:///" + name + "?socket=" + u.getPath();
        }
        InetSocketAddress i = (InetSocketAddress) address;
        String host = i.getAddress().getHostAddress();
        if (i.getAddress() instanceof java.net.Inet6Address) {
            int zone = host.indexOf('%');
            host = "[" + (zone >= 0 ? host.substring(0, zone) : host) + "]";
        }
        return scheme + "://" + host + ":" + i.getPort() + (name.isEmpty() ? "" : "/" + name);
    }

    /** The export name as an NBD URI's path holds it: UTF-8, bytes outside RFC 3986's unreserved set as %XX. */
    private static String percentEncoded(String name) {
        StringBuilder sb = new StringBuilder();
        for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (b & 0xff);
            if (c < 0x80 && (Character.isLetterOrDigit(c) || "-._~".indexOf(c) >= 0)) {
                sb.append(c);
            } else {
                sb.append('%').append(String.format("%02X", b & 0xff));
            }
        }
        return sb.toString();
    }

    /**
     * Completes when a client that reached transmission leaves and no other connection is open (one in its
     * handshake included): where qemu-nbd without {@code --persistent} exits. A client that only listed the exports
     * or failed its handshake does not count, as with qemu-nbd.
     */
    public CompletableFuture<Void> lastClientGone() {
        return lastClientGone;
    }

    /** Whether clients must use TLS. */
    public boolean requiresTls() {
        return tls != null;
    }

    private void acceptLoop() {
        while (!stopped.get()) {
            // A free slot first: past the limit, clients wait in the listen backlog (qemu-nbd's --shared).
            if (connectionSlots != null) {
                try {
                    connectionSlots.acquire();
                } catch (InterruptedException e) {
                    return; // stop()
                }
            }
            SocketChannel ch;
            try {
                ch = listener.accept();
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                if (!stopped.get()) {
                    LOG.warn("accept failed", e);
                }
                return;
            }
            connections.add(ch);
            Thread t = connectionThreads.newThread(() -> serve(ch));
            handlers.add(t);
            t.start();
            if (stopped.get()) {
                shutdownInput(ch);
            }
        }
    }

    /** One connection, handshake to close; every failure stays inside it. */
    private void serve(SocketChannel ch) {
        ByteBudget budget = new ByteBudget(options.connectionBudgetBytes());
        budgets.add(budget);
        Handshake handshake = new Handshake(ch, export, tls, options.maxConnections() != 1);
        HandshakeLimit limit = HandshakeLimit.start(ch, options.handshakeLimit());
        boolean negotiated = false;
        try (ch) {
            Session session = handshake.run();
            if (!limit.passed()) {
                return; // the limit closed the channel as the handshake ended
            }
            ByteStream stream = handshake.stream();
            try {
                if (session != null) {
                    negotiated = true;
                    if (!handshake.encrypted()) {
                        stream = RingReads.around(ch, stream);
                    }
                    new Transmission(stream, export, session, executor, budget, buffers, Transmission::logDefect,
                            stopped::get).run();
                }
            } finally {
                // TLS: close_notify before the socket closes, however the transmission ended (a stop ends it at
                // the end of the stream, which throws); try-with-resources closes the socket again: a no-op.
                closeStream(stream);
            }
        } catch (ProtocolViolation e) {
            LOG.info("NBD client dropped: {}", e.getMessage());
        } catch (IOException | RuntimeException e) {
            LOG.debug("NBD connection ended: {}", e.toString());
        } finally {
            limit.passed();
            budgets.remove(budget);
            connections.remove(ch);
            handlers.remove(Thread.currentThread());
            if (connectionSlots != null) {
                connectionSlots.release();
            }
            if (negotiated && connections.isEmpty()) {
                lastClientGone.complete(null);
            }
        }
    }

    /**
     * Stops accepting, lets every connection finish the requests it has started (new requests are not started,
     * even those already read ahead) for up to the stop grace, then closes the connections still open (a client
     * that does not read its replies would otherwise block them forever), waits for the requests already running
     * on the device, and flushes the device so everything acknowledged is durable. Idempotent.
     */
    public void stop() throws IOException {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        listener.close();
        // The acceptor may be waiting for a connection slot rather than in accept.
        acceptor.interrupt();
        try {
            acceptor.join();
            for (SocketChannel ch : connections) {
                shutdownInput(ch);
            }
            long deadline = System.nanoTime() + options.stopGrace().toNanos();
            for (Thread t : handlers) {
                long left = deadline - System.nanoTime();
                if (left <= 0 || !t.join(Duration.ofNanos(left))) {
                    break;
                }
            }
            // Past the grace: a reply blocked on a client that does not read fails once its socket is closed;
            // a request still running on the device finishes, and its handler waits for it.
            for (SocketChannel ch : connections) {
                closeQuietly(ch);
            }
            for (Thread t : handlers) {
                t.join();
            }
            executor.shutdown();
            executor.awaitTermination(1, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (address instanceof UnixDomainSocketAddress u) {
            Files.deleteIfExists(u.getPath());
        }
        if (!export.readOnly()) {
            export.device().flush();
        }
    }

    /** Closes a connection's stream without hiding why it ended (the exception in flight, if any). */
    private static void closeStream(ByteStream stream) {
        try {
            stream.close();
        } catch (IOException | RuntimeException e) {
            LOG.debug("NBD connection's stream did not close cleanly: {}", e.toString());
        }
    }

    private static void closeQuietly(SocketChannel ch) {
        try {
            ch.close();
        } catch (IOException e) {
            // Closing is all that was asked.
        }
    }

    private static void shutdownInput(SocketChannel ch) {
        try {
            ch.shutdownInput();
        } catch (IOException e) {
            // Already closed: nothing to stop.
        }
    }

    @Override
    public void close() throws IOException {
        stop();
    }
}
