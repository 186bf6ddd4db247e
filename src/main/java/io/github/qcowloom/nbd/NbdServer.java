package io.github.qcowloom.nbd;

import io.github.qcowloom.exec.ExecutionModel;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An NBD server for one export on a Unix socket or a TCP port: each connection gets a virtual thread for its
 * handshake and request stream, requests run on the execution model's executor. One client's failure closes only
 * that client's connection.
 */
public final class NbdServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(NbdServer.class);

    private final Export export;
    private final ServerSocketChannel listener;
    private final SocketAddress address;
    private final ExecutorService executor;
    private final Set<SocketChannel> connections = ConcurrentHashMap.newKeySet();
    private final Set<Thread> handlers = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean stopped = new AtomicBoolean();
    private final Thread acceptor;

    private NbdServer(Export export, ServerSocketChannel listener, ExecutionModel model) throws IOException {
        this.export = export;
        this.listener = listener;
        this.address = listener.getLocalAddress();
        this.executor = model.newExecutor();
        this.acceptor = Thread.ofVirtual().name("nbd-accept").start(this::acceptLoop);
    }

    /**
     * Binds {@code address} (a {@link UnixDomainSocketAddress} or an {@link InetSocketAddress}) and starts serving.
     * The caller keeps ownership of the export's device: {@link #stop()} flushes it but does not close it.
     */
    public static NbdServer start(Export export, SocketAddress address, ExecutionModel model) throws IOException {
        ServerSocketChannel ch = address instanceof UnixDomainSocketAddress
                ? ServerSocketChannel.open(StandardProtocolFamily.UNIX) : ServerSocketChannel.open();
        try {
            ch.bind(address);
            return new NbdServer(export, ch, model);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    /** The bound address (with the actual port when TCP port 0 was asked for). */
    public SocketAddress address() {
        return address;
    }

    /** The NBD URI clients use: {@code nbd+unix:///?socket=PATH} or {@code nbd://HOST:PORT}. */
    public String uri() {
        if (address instanceof UnixDomainSocketAddress u) {
            return "nbd+unix:///?socket=" + u.getPath();
        }
        InetSocketAddress i = (InetSocketAddress) address;
        return "nbd://" + i.getAddress().getHostAddress() + ":" + i.getPort();
    }

    private void acceptLoop() {
        while (!stopped.get()) {
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
            Thread t = Thread.ofVirtual().name("nbd-conn").unstarted(() -> serve(ch));
            handlers.add(t);
            t.start();
            if (stopped.get()) {
                shutdownInput(ch);
            }
        }
    }

    /** One connection, handshake to close; every failure stays inside it. */
    private void serve(SocketChannel ch) {
        try (ch) {
            Session session = new Handshake(ch, export).run();
            if (session != null) {
                new Transmission(ch, export, session, executor).run();
            }
        } catch (ProtocolViolation e) {
            LOG.info("NBD client dropped: {}", e.getMessage());
        } catch (IOException | RuntimeException e) {
            LOG.debug("NBD connection ended: {}", e.toString());
        } finally {
            connections.remove(ch);
            handlers.remove(Thread.currentThread());
        }
    }

    /**
     * Stops accepting, lets every connection finish the requests it has started (new requests are not read),
     * then flushes the device so everything acknowledged is durable. Idempotent.
     */
    public void stop() throws IOException {
        if (!stopped.compareAndSet(false, true)) {
            return;
        }
        listener.close();
        try {
            acceptor.join();
            for (SocketChannel ch : connections) {
                shutdownInput(ch);
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
