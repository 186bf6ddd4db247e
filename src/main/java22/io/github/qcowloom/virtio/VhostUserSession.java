package io.github.qcowloom.virtio;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.os.EventFds;
import io.github.qcowloom.os.UnixSockets;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One vhost-user front end's connection: reads its messages, answers them, and drives a fresh
 * {@link VirtioBlkDevice} over the guest memory it shares. Messages are handled in order on the connection's
 * thread, so the protocol state (features, memory table, ring set-up) belongs to that thread alone. Rings start
 * when their kick descriptor arrives and stop on GET_VRING_BASE (requests in flight finish first); with
 * VHOST_USER_F_PROTOCOL_FEATURES they take requests only once enabled.
 *
 * <p>A malformed message (wrong size, too many regions, descriptors missing or unexpected in number, an index
 * out of range, an unknown request) throws {@link VhostUserProtocolException}: the server logs it and closes the
 * connection. Every descriptor received is either kept by a ring or a mapping, or closed when its message is done.
 *
 * <p>Lock discipline: {@code fdLock} guards {@code callFds} and {@code errFds}: request threads signal under its
 * read lock, the connection thread replaces and closes them under its write lock (so no signal ever goes to a
 * closed, possibly reused descriptor number). {@code enabled} is an atomic array read by kick waiters. No other
 * lock is held while taking it; the device's own locks are taken without it.
 */
final class VhostUserSession implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserSession.class);
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    /** The set-up of one ring, as the front end sent it. Confined to the connection thread. */
    private static final class Ring {
        int num;
        boolean addressed;
        long descUser;
        long usedUser;
        long availUser;
        int base;
        int kickFd = -1;
        KickWaiter waiter;
    }

    /** One message: header fields, payload (native order), and its descriptors (-1 once taken). */
    private record Message(int request, int flags, ByteBuffer payload, int[] fds) {
        int size() {
            return payload.remaining();
        }
    }

    private final int socket;
    private final VirtioBlkConfig config;
    private final VirtioBlkDevice device;
    private final Ring[] rings;
    private final ReentrantReadWriteLock fdLock = new ReentrantReadWriteLock();
    private final int[] callFds;
    private final int[] errFds;
    private final AtomicIntegerArray enabled;
    private final Arena buffers = Arena.ofConfined();
    private final MemorySegment header;
    private final MemorySegment payload;
    private final MemorySegment reply;
    private long features;
    private long protocolFeatures;
    private GuestMappings mappings;

    VhostUserSession(int socket, BlockDevice disk, VirtioBlkConfig config, ExecutionModel model) {
        this.socket = socket;
        this.config = config;
        this.rings = new Ring[config.numQueues()];
        for (int i = 0; i < rings.length; i++) {
            rings[i] = new Ring();
        }
        this.callFds = new int[config.numQueues()];
        this.errFds = new int[config.numQueues()];
        Arrays.fill(callFds, -1);
        Arrays.fill(errFds, -1);
        this.enabled = new AtomicIntegerArray(config.numQueues());
        this.header = buffers.allocate(VhostUser.HEADER_BYTES, 8);
        this.payload = buffers.allocate(VhostUser.MAX_PAYLOAD, 8);
        this.reply = buffers.allocate(VhostUser.HEADER_BYTES + VhostUser.MAX_PAYLOAD, 8);
        this.device = new VirtioBlkDevice(disk, config, model, new VirtioBlkDevice.Notifier() {
            @Override
            public void interrupt(int queue) {
                signal(callFds, queue);
            }

            @Override
            public void needsReset(int queue, String reason) {
                signal(errFds, queue);
            }
        });
    }

    private void signal(int[] fds, int queue) {
        fdLock.readLock().lock();
        try {
            int fd = fds[queue];
            if (fd >= 0) {
                EventFds.signal(fd);
            }
        } catch (IOException e) {
            LOG.debug("queue {}: cannot signal the front end: {}", queue, e.getMessage());
        } finally {
            fdLock.readLock().unlock();
        }
    }

    /** Serves messages until the front end disconnects (returns) or breaks the protocol (throws). */
    void run() throws IOException {
        while (true) {
            Message m = receive();
            if (m == null) {
                return;
            }
            try {
                handle(m);
            } finally {
                for (int fd : m.fds()) {
                    if (fd >= 0) {
                        UnixSockets.close(fd);
                    }
                }
            }
        }
    }

    private Message receive() throws IOException {
        UnixSockets.Received r = UnixSockets.receive(socket, header, VhostUser.HEADER_BYTES);
        int[] fds = r.fds();
        try {
            if (r.bytes() == 0) {
                if (fds.length > 0) {
                    throw new VhostUserProtocolException("descriptors without a message");
                }
                return null;
            }
            if (r.bytes() < VhostUser.HEADER_BYTES) {
                UnixSockets.readFully(socket, header.asSlice(r.bytes()), VhostUser.HEADER_BYTES - r.bytes());
            }
            int request = header.get(ValueLayout.JAVA_INT, 0);
            int flags = header.get(ValueLayout.JAVA_INT, 4);
            int size = header.get(ValueLayout.JAVA_INT, 8);
            if ((flags & 0x3) != VhostUser.VERSION) {
                throw new VhostUserProtocolException("message version " + (flags & 0x3) + " (expected 1)");
            }
            if (size < 0 || size > VhostUser.MAX_PAYLOAD) {
                throw new VhostUserProtocolException(VhostUser.name(request) + " with a payload of "
                        + Integer.toUnsignedString(size) + " bytes (at most " + VhostUser.MAX_PAYLOAD + ")");
            }
            UnixSockets.readFully(socket, payload, size);
            byte[] bytes = new byte[size];
            MemorySegment.copy(payload, ValueLayout.JAVA_BYTE, 0, bytes, 0, size);
            Message m = new Message(request, flags, ByteBuffer.wrap(bytes).order(NATIVE), fds);
            fds = null;
            return m;
        } finally {
            if (fds != null) {
                for (int fd : fds) {
                    UnixSockets.close(fd);
                }
            }
        }
    }

    private void handle(Message m) throws IOException {
        LOG.debug("{} ({} bytes, {} fds)", VhostUser.name(m.request()), m.size(), m.fds().length);
        boolean ok = true;
        switch (m.request()) {
            case VhostUser.GET_FEATURES -> {
                expect(m, 0, 0);
                replyU64(m, device.features() | VhostUser.F_PROTOCOL_FEATURES);
                return;
            }
            case VhostUser.SET_FEATURES -> setFeatures(m);
            case VhostUser.GET_PROTOCOL_FEATURES -> {
                expect(m, 0, 0);
                replyU64(m, VhostUser.PROTOCOL_FEATURES);
                return;
            }
            case VhostUser.SET_PROTOCOL_FEATURES -> {
                expect(m, 8, 0);
                long f = m.payload().getLong(0);
                if ((f & ~VhostUser.PROTOCOL_FEATURES) != 0) {
                    throw new VhostUserProtocolException("protocol features 0x" + Long.toHexString(f)
                            + " beyond those offered (0x" + Long.toHexString(VhostUser.PROTOCOL_FEATURES) + ")");
                }
                protocolFeatures = f;
            }
            case VhostUser.SET_OWNER -> expect(m, 0, 0);
            case VhostUser.RESET_OWNER -> {
                expect(m, 0, 0);
                stopAll();
                device.reset();
            }
            case VhostUser.SET_MEM_TABLE -> setMemTable(m);
            case VhostUser.SET_VRING_NUM -> {
                Ring r = stoppedRing(m);
                int num = m.payload().getInt(4);
                if (num < 1 || num > config.maxQueueSize() || Integer.bitCount(num) != 1) {
                    throw new VhostUserProtocolException("ring size " + num + " (a power of 2 up to "
                            + config.maxQueueSize() + ")");
                }
                r.num = num;
            }
            case VhostUser.SET_VRING_ADDR -> {
                expect(m, 40, 0);
                int index = ringIndex(m.payload().getInt(0));
                Ring r = rings[index];
                if (r.waiter != null) {
                    throw new VhostUserProtocolException("SET_VRING_ADDR on running ring " + index);
                }
                r.descUser = m.payload().getLong(8);
                r.usedUser = m.payload().getLong(16);
                r.availUser = m.payload().getLong(24);
                r.addressed = true;
            }
            case VhostUser.SET_VRING_BASE -> {
                Ring r = stoppedRing(m);
                int base = m.payload().getInt(4);
                if (base < 0 || base > 0xffff) {
                    throw new VhostUserProtocolException("ring base " + Integer.toUnsignedString(base));
                }
                r.base = base;
            }
            case VhostUser.GET_VRING_BASE -> {
                expect(m, 8, 0);
                int index = ringIndex(m.payload().getInt(0));
                int base = stopRing(index);
                replyState(m, index, base);
                return;
            }
            case VhostUser.SET_VRING_KICK -> setKick(m);
            case VhostUser.SET_VRING_CALL -> setNotifier(m, callFds);
            case VhostUser.SET_VRING_ERR -> setNotifier(m, errFds);
            case VhostUser.GET_QUEUE_NUM -> {
                expect(m, 0, 0);
                replyU64(m, config.numQueues());
                return;
            }
            case VhostUser.SET_VRING_ENABLE -> {
                expect(m, 8, 0);
                int index = ringIndex(m.payload().getInt(0));
                int on = m.payload().getInt(4);
                if (on != 0 && on != 1) {
                    throw new VhostUserProtocolException("SET_VRING_ENABLE " + on);
                }
                enabled.set(index, on);
                kickIfEnabled(index); // requests made available while disabled
            }
            case VhostUser.GET_CONFIG -> {
                getConfig(m);
                return;
            }
            case VhostUser.SET_CONFIG -> {
                configHeader(m);
                ok = false; // nothing in the virtio-blk config space is writable without CONFIG_WCE
            }
            case VhostUser.GET_MAX_MEM_SLOTS -> {
                expect(m, 0, 0);
                replyU64(m, VhostUser.MAX_REGIONS);
                return;
            }
            case VhostUser.SET_BACKEND_REQ_FD -> {
                // Not offered (no BACKEND_REQ protocol feature); a front end sending it anyway loses nothing.
                LOG.debug("ignoring SET_BACKEND_REQ_FD");
            }
            default -> throw new VhostUserProtocolException("unsupported vhost-user " + VhostUser.name(m.request()));
        }
        if ((protocolFeatures & (1L << VhostUser.PROTOCOL_F_REPLY_ACK)) != 0
                && (m.flags() & VhostUser.FLAG_NEED_REPLY) != 0) {
            replyU64(m, ok ? 0 : 1);
        }
    }

    private static void expect(Message m, int size, int fds) throws VhostUserProtocolException {
        if (m.size() != size) {
            throw new VhostUserProtocolException(VhostUser.name(m.request()) + " with " + m.size()
                    + " payload bytes (expected " + size + ")");
        }
        if (m.fds().length != fds) {
            throw new VhostUserProtocolException(VhostUser.name(m.request()) + " with " + m.fds().length
                    + " descriptors (expected " + fds + ")");
        }
    }

    private int ringIndex(long index) throws VhostUserProtocolException {
        if (index < 0 || index >= rings.length) {
            throw new VhostUserProtocolException("ring " + index + " (the device has " + rings.length + ")");
        }
        return (int) index;
    }

    private Ring stoppedRing(Message m) throws VhostUserProtocolException {
        expect(m, 8, 0);
        int index = ringIndex(m.payload().getInt(0));
        if (rings[index].waiter != null) {
            throw new VhostUserProtocolException(VhostUser.name(m.request()) + " on running ring " + index);
        }
        return rings[index];
    }

    private void setFeatures(Message m) throws IOException {
        expect(m, 8, 0);
        long f = m.payload().getLong(0);
        long offered = device.features() | VhostUser.F_PROTOCOL_FEATURES;
        if ((f & ~offered) != 0) {
            throw new VhostUserProtocolException("features 0x" + Long.toHexString(f & ~offered) + " not offered");
        }
        boolean running = false;
        for (Ring r : rings) {
            running |= r.waiter != null;
        }
        if (!running) {
            device.reset(); // a new negotiation: the driver starts over (and a broken device is usable again)
        }
        features = f;
        device.acknowledge(f & ~VhostUser.F_PROTOCOL_FEATURES);
    }

    private void setMemTable(Message m) throws IOException {
        if (m.size() < 8) {
            throw new VhostUserProtocolException("SET_MEM_TABLE with " + m.size() + " payload bytes");
        }
        int n = m.payload().getInt(0);
        if (n < 1 || n > VhostUser.MAX_REGIONS) {
            throw new VhostUserProtocolException("SET_MEM_TABLE with " + Integer.toUnsignedString(n)
                    + " regions (1 to " + VhostUser.MAX_REGIONS + ")");
        }
        expect(m, 8 + 32 * n, n);
        List<GuestMappings.Region> regions = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int at = 8 + 32 * i;
            regions.add(new GuestMappings.Region(m.payload().getLong(at), m.payload().getLong(at + 8),
                    m.payload().getLong(at + 16), m.payload().getLong(at + 24)));
        }
        // Running rings stop (their requests finish) before the old memory goes, and resume over the new one.
        List<Integer> resume = new ArrayList<>();
        for (int i = 0; i < rings.length; i++) {
            if (rings[i].waiter != null) {
                resume.add(i);
                stopWaiter(i);
            }
        }
        GuestMappings next = GuestMappings.map(regions, m.fds());
        if (mappings != null) {
            mappings.close();
        }
        mappings = next;
        LOG.debug("memory table of {} regions", n);
        for (int i : resume) {
            startRing(i);
        }
    }

    private void setKick(Message m) throws IOException {
        if (m.size() != 8) {
            throw new VhostUserProtocolException("SET_VRING_KICK with " + m.size() + " payload bytes");
        }
        long value = m.payload().getLong(0);
        int index = ringIndex(value & VhostUser.VRING_INDEX_MASK);
        if ((value & VhostUser.VRING_NOFD) != 0) {
            throw new VhostUserProtocolException("ring " + index + ": polling (no kick descriptor) is not supported");
        }
        expect(m, 8, 1);
        Ring r = rings[index];
        stopWaiter(index);
        if (r.kickFd >= 0) {
            UnixSockets.close(r.kickFd);
        }
        r.kickFd = m.fds()[0];
        m.fds()[0] = -1;
        if ((features & VhostUser.F_PROTOCOL_FEATURES) == 0) {
            enabled.set(index, 1); // without protocol features a ring starts enabled
        }
        startRing(index);
    }

    private void startRing(int index) throws IOException {
        Ring r = rings[index];
        if (mappings == null || !r.addressed || r.num == 0) {
            throw new VhostUserProtocolException("ring " + index + " started before its memory, size and addresses");
        }
        VirtqueueLayout layout;
        try {
            layout = new VirtqueueLayout(r.num, mappings.guestAddress(r.descUser), mappings.guestAddress(r.availUser),
                    mappings.guestAddress(r.usedUser), r.base);
            device.startQueue(index, mappings.memory(), layout);
        } catch (IllegalArgumentException | IllegalStateException | GuestMemoryException e) {
            throw new VhostUserProtocolException("ring " + index + ": " + e.getMessage());
        }
        r.waiter = new KickWaiter(index, r.kickFd, this::kickIfEnabled);
        LOG.debug("ring {} started: {}", index, layout);
        // Requests made available before this start (a kick a stopped waiter took, or one sent before a front
        // end reconnected) get no kick of their own: look now.
        kickIfEnabled(index);
    }

    /** Takes ring {@code index}'s available requests if it is enabled (a ring not started ignores it). */
    private void kickIfEnabled(int index) {
        if (enabled.get(index) == 1) {
            device.kick(index);
        }
    }

    /** Stops ring {@code index}'s kick waiter and queue, if started, keeping the index it reached as the base. */
    private void stopWaiter(int index) {
        Ring r = rings[index];
        if (r.waiter != null) {
            r.waiter.stop();
            r.waiter = null;
            r.base = device.stopQueue(index);
        }
    }

    /** Stops ring {@code index} (waiting for its requests), closes its kick and call descriptors; its next index. */
    private int stopRing(int index) {
        Ring r = rings[index];
        stopWaiter(index);
        if (r.kickFd >= 0) {
            UnixSockets.close(r.kickFd);
            r.kickFd = -1;
        }
        replaceFd(callFds, index, -1);
        return r.base;
    }

    private void stopAll() {
        for (int i = 0; i < rings.length; i++) {
            stopRing(i);
            replaceFd(errFds, i, -1);
        }
    }

    private void setNotifier(Message m, int[] fds) throws IOException {
        if (m.size() != 8) {
            throw new VhostUserProtocolException(VhostUser.name(m.request()) + " with " + m.size() + " payload bytes");
        }
        long value = m.payload().getLong(0);
        int index = ringIndex(value & VhostUser.VRING_INDEX_MASK);
        if ((value & VhostUser.VRING_NOFD) != 0) {
            expect(m, 8, 0);
            replaceFd(fds, index, -1);
            return;
        }
        expect(m, 8, 1);
        replaceFd(fds, index, m.fds()[0]);
        m.fds()[0] = -1;
    }

    private void replaceFd(int[] fds, int index, int fd) {
        int old;
        fdLock.writeLock().lock();
        try {
            old = fds[index];
            fds[index] = fd;
        } finally {
            fdLock.writeLock().unlock();
        }
        if (old >= 0) {
            UnixSockets.close(old);
        }
    }

    /** Checks a config message's header (offset, size, flags) against its payload; returns {offset, size}. */
    private int[] configHeader(Message m) throws VhostUserProtocolException {
        if (m.size() < 12 || m.fds().length != 0) {
            throw new VhostUserProtocolException(VhostUser.name(m.request()) + " with " + m.size() + " bytes and "
                    + m.fds().length + " descriptors");
        }
        int offset = m.payload().getInt(0);
        int size = m.payload().getInt(4);
        if (offset < 0 || size < 0 || size > VhostUser.MAX_CONFIG || offset > VhostUser.MAX_CONFIG - size
                || m.size() != 12 + size) {
            throw new VhostUserProtocolException(VhostUser.name(m.request()) + " of " + Integer.toUnsignedString(size)
                    + " bytes at offset " + Integer.toUnsignedString(offset) + " in a " + m.size() + "-byte payload");
        }
        return new int[] {offset, size};
    }

    private void getConfig(Message m) throws IOException {
        int[] range = configHeader(m);
        byte[] space = Arrays.copyOf(device.configSpace(), VhostUser.MAX_CONFIG);
        ByteBuffer out = ByteBuffer.allocate(12 + range[1]).order(NATIVE);
        out.putInt(range[0]).putInt(range[1]).putInt(m.payload().getInt(8));
        out.put(space, range[0], range[1]);
        send(m.request(), out.array());
    }

    private void replyU64(Message m, long value) throws IOException {
        send(m.request(), ByteBuffer.allocate(8).order(NATIVE).putLong(value).array());
    }

    private void replyState(Message m, int index, int num) throws IOException {
        send(m.request(), ByteBuffer.allocate(8).order(NATIVE).putInt(index).putInt(num).array());
    }

    private void send(int request, byte[] body) throws IOException {
        reply.set(ValueLayout.JAVA_INT, 0, request);
        reply.set(ValueLayout.JAVA_INT, 4, VhostUser.VERSION | VhostUser.FLAG_REPLY);
        reply.set(ValueLayout.JAVA_INT, 8, body.length);
        MemorySegment.copy(body, 0, reply, ValueLayout.JAVA_BYTE, VhostUser.HEADER_BYTES, body.length);
        UnixSockets.send(socket, reply, VhostUser.HEADER_BYTES + body.length);
    }

    /** Wakes the connection thread (from another thread): its next receive sees the end of the stream. */
    void disconnect() {
        UnixSockets.shutdown(socket);
    }

    /** Stops every ring (finishing their requests), unmaps guest memory, closes every descriptor and the socket. */
    @Override
    public void close() {
        stopAll();
        device.close();
        if (mappings != null) {
            mappings.close();
            mappings = null;
        }
        buffers.close();
        UnixSockets.close(socket);
    }
}
