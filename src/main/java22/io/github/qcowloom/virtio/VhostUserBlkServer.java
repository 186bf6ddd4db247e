package io.github.qcowloom.virtio;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.UnsupportedFeatureException;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.os.Joins;
import io.github.qcowloom.os.UnixSockets;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The vhost-user-blk back end: listens on a Unix socket and serves one front end at a time (QEMU, or any
 * vhost-user front end), each connection with a fresh device, so that a front end that disconnects and comes
 * back starts from a clean state (memory unmapped, rings stopped, descriptors closed). A connection that breaks
 * the protocol is closed with the reason logged; the server goes on accepting.
 *
 * <p>Lock discipline: {@code lock} guards {@code current} and {@code closed}, so that {@link #close} and the
 * accepting thread agree on which session to wake. No other lock is taken under it.
 */
public final class VhostUserBlkServer implements VhostUserBlk.Server {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserBlkServer.class);

    private final Path socket;
    private final int listenFd;
    private final BlockDevice disk;
    private final VirtioBlkConfig config;
    private final ExecutionModel model;
    private final ReentrantLock lock = new ReentrantLock();
    private VhostUserSession current;
    private boolean closed;
    private final Thread thread;

    private VhostUserBlkServer(Path socket, int listenFd, BlockDevice disk, VirtioBlkConfig config,
            ExecutionModel model) {
        this.socket = socket;
        this.listenFd = listenFd;
        this.disk = disk;
        this.config = config;
        this.model = model;
        this.thread = Thread.ofPlatform().name("vhost-user-blk").start(this::serve);
    }

    /** Listens on {@code socket} and serves {@code disk}; see {@link VhostUserBlk#serve}. */
    public static VhostUserBlkServer start(Path socket, BlockDevice disk, VirtioBlkConfig config,
            ExecutionModel model) throws IOException {
        String unsupported = UnixSockets.unsupportedReason();
        if (unsupported != null) {
            throw new UnsupportedFeatureException("vhost-user-blk: " + unsupported);
        }
        if (!config.readOnly() && disk.readOnly()) {
            throw new IllegalArgumentException("the image is open read-only: export it with --read-only");
        }
        return new VhostUserBlkServer(socket, UnixSockets.listen(socket, 16), disk, config, model);
    }

    @Override
    public Path socket() {
        return socket;
    }

    private void serve() {
        while (true) {
            int fd;
            try {
                fd = UnixSockets.accept(listenFd);
            } catch (IOException e) {
                LOG.error("vhost-user-blk: accept failed, no longer serving: {}", e.getMessage());
                return;
            }
            if (fd < 0) {
                return;
            }
            VhostUserSession session = new VhostUserSession(fd, disk, config, model);
            lock.lock();
            try {
                if (closed) {
                    session.close();
                    return;
                }
                current = session;
            } finally {
                lock.unlock();
            }
            LOG.debug("vhost-user-blk: front end connected");
            try {
                session.run();
                LOG.debug("vhost-user-blk: front end disconnected");
            } catch (IOException | RuntimeException | InternalError e) {
                // InternalError: a fault in the front end's memory (a file it shrank under its mapping)
                LOG.warn("vhost-user-blk: closing the connection: {}", e.getMessage());
            } finally {
                lock.lock();
                try {
                    current = null;
                } finally {
                    lock.unlock();
                }
                session.close();
            }
        }
    }

    @Override
    public void close() {
        lock.lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            UnixSockets.shutdown(listenFd);
            if (current != null) {
                current.disconnect();
            }
        } finally {
            lock.unlock();
        }
        Joins.uninterruptibly(thread);
        UnixSockets.close(listenFd);
        try {
            Files.deleteIfExists(socket);
        } catch (IOException e) {
            LOG.warn("cannot remove {}: {}", socket, e.getMessage());
        }
    }
}
