package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.os.EventFds;
import io.github.qcowloom.os.SharedMemory;
import io.github.qcowloom.os.UnixSockets;
import io.github.qcowloom.testing.RingDriver;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A vhost-user front end written from docs/interop/vhost-user.rst, standing in for QEMU without a guest: guest RAM
 * in a memfd shared by SET_MEM_TABLE (mapped by the back end at an mmap offset, addressed by "user" addresses as
 * QEMU's own virtual addresses would be), rings laid out by {@link RingDriver} in that memory, eventfds for kicks
 * and calls. Also sends raw, possibly malformed, messages.
 */
final class VhostUserFrontEnd implements AutoCloseable {
    static final long GUEST_BASE = 0x100000;
    static final long USER_BASE = 0x7f1200000000L;
    static final int MMAP_OFFSET = 64 * 1024;
    static final int RAM = 8 << 20;
    static final int QUEUE_SPAN = 1 << 20;

    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    final int socket;
    private final Arena arena = Arena.ofShared();
    private final int memfd;
    final GuestMemory memory;
    final List<RingDriver> rings = new ArrayList<>();
    final List<Integer> kicks = new ArrayList<>();
    final List<Integer> calls = new ArrayList<>();
    private volatile boolean closed;

    VhostUserFrontEnd(Path path) throws IOException {
        socket = UnixSockets.connect(path);
        memfd = SharedMemory.memfd("guest-ram", MMAP_OFFSET + RAM);
        MemorySegment ram = SharedMemory.map(memfd, MMAP_OFFSET + RAM, arena).asSlice(MMAP_OFFSET, RAM);
        memory = new SegmentGuestMemory(List.of(new SegmentGuestMemory.Region(GUEST_BASE, ram)));
    }

    /** A reply: request, flags, payload. */
    record Reply(int request, int flags, ByteBuffer payload) {
    }

    /** Sends a message with {@code flags} (version 1 is added) and descriptors. */
    void send(int request, int flags, byte[] payload, int... fds) throws IOException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment m = a.allocate(12 + payload.length, 8);
            m.set(ValueLayout.JAVA_INT, 0, request);
            m.set(ValueLayout.JAVA_INT, 4, flags | VhostUser.VERSION);
            m.set(ValueLayout.JAVA_INT, 8, payload.length);
            MemorySegment.copy(payload, 0, m, ValueLayout.JAVA_BYTE, 12, payload.length);
            UnixSockets.send(socket, m, (int) m.byteSize(), fds);
        }
    }

    /** The next reply; null if the back end closed the connection. */
    Reply receive() throws IOException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(12, 8);
            UnixSockets.Received r = UnixSockets.receive(socket, h, 12);
            for (int fd : r.fds()) {
                UnixSockets.close(fd);
            }
            if (r.bytes() == 0) {
                return null;
            }
            if (r.bytes() < 12) {
                UnixSockets.readFully(socket, h.asSlice(r.bytes()), 12 - r.bytes());
            }
            int size = h.get(ValueLayout.JAVA_INT, 8);
            MemorySegment p = a.allocate(Math.max(size, 1), 8);
            UnixSockets.readFully(socket, p, size);
            byte[] bytes = new byte[size];
            MemorySegment.copy(p, ValueLayout.JAVA_BYTE, 0, bytes, 0, size);
            return new Reply(h.get(ValueLayout.JAVA_INT, 0), h.get(ValueLayout.JAVA_INT, 4),
                    ByteBuffer.wrap(bytes).order(NATIVE));
        }
    }

    static byte[] u64(long v) {
        return ByteBuffer.allocate(8).order(NATIVE).putLong(v).array();
    }

    static byte[] state(int index, int num) {
        return ByteBuffer.allocate(8).order(NATIVE).putInt(index).putInt(num).array();
    }

    long requestU64(int request) throws IOException {
        send(request, 0, new byte[0]);
        Reply r = receive();
        if (r == null || r.request() != request || r.payload().remaining() != 8
                || (r.flags() & VhostUser.FLAG_REPLY) == 0) {
            throw new IOException("bad reply to " + VhostUser.name(request) + ": " + r);
        }
        return r.payload().getLong(0);
    }

    /** Sends with NEED_REPLY and returns the back end's acknowledgement (0 is success). */
    long acked(int request, byte[] payload, int... fds) throws IOException {
        send(request, VhostUser.FLAG_NEED_REPLY, payload, fds);
        Reply r = receive();
        if (r == null || r.request() != request || r.payload().remaining() != 8) {
            throw new IOException("no acknowledgement of " + VhostUser.name(request) + ": " + r);
        }
        return r.payload().getLong(0);
    }

    byte[] config(int size) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(12 + size).order(NATIVE).putInt(0).putInt(size).putInt(0);
        send(VhostUser.GET_CONFIG, 0, b.array());
        Reply r = receive();
        if (r == null || r.payload().remaining() != 12 + size) {
            throw new IOException("bad GET_CONFIG reply: " + r);
        }
        byte[] out = new byte[size];
        r.payload().get(12, out);
        return out;
    }

    byte[] memTable() {
        ByteBuffer b = ByteBuffer.allocate(8 + 32).order(NATIVE).putInt(1).putInt(0);
        b.putLong(GUEST_BASE).putLong(RAM).putLong(USER_BASE).putLong(MMAP_OFFSET);
        return b.array();
    }

    int memfd() {
        return memfd;
    }

    /**
     * The whole start-up QEMU's vhost-user-blk does: features (with EVENT_IDX and INDIRECT if asked), protocol
     * features with REPLY_ACK, owner, memory table, and {@code queues} rings of {@code size} entries, enabled.
     */
    void start(int queues, int size, boolean eventIndex) throws IOException {
        long offered = requestU64(VhostUser.GET_FEATURES);
        long wanted = VirtioBlk.bit(VirtioBlk.F_VERSION_1) | VirtioBlk.bit(VirtioBlk.F_RING_INDIRECT_DESC)
                | VirtioBlk.bit(VirtioBlk.F_FLUSH) | VirtioBlk.bit(VirtioBlk.F_MQ) | VirtioBlk.bit(VirtioBlk.F_BLK_SIZE)
                | (eventIndex ? VirtioBlk.bit(VirtioBlk.F_RING_EVENT_IDX) : 0) | VhostUser.F_PROTOCOL_FEATURES;
        if ((offered & wanted) != wanted) {
            throw new IOException("features offered: 0x" + Long.toHexString(offered));
        }
        long protocol = requestU64(VhostUser.GET_PROTOCOL_FEATURES);
        send(VhostUser.SET_PROTOCOL_FEATURES, 0, u64(protocol));
        send(VhostUser.SET_OWNER, 0, new byte[0]);
        send(VhostUser.SET_FEATURES, 0, u64(wanted));
        check(acked(VhostUser.SET_MEM_TABLE, memTable(), memfd), VhostUser.SET_MEM_TABLE);
        for (int q = 0; q < queues; q++) {
            long base = GUEST_BASE + (long) q * QUEUE_SPAN;
            RingDriver ring = new RingDriver(memory, base, QUEUE_SPAN, size, 0);
            rings.add(ring);
            int kick = EventFds.create();
            int call = EventFds.create();
            kicks.add(kick);
            calls.add(call);
            check(acked(VhostUser.SET_VRING_NUM, state(q, size)), VhostUser.SET_VRING_NUM);
            check(acked(VhostUser.SET_VRING_BASE, state(q, 0)), VhostUser.SET_VRING_BASE);
            ByteBuffer addr = ByteBuffer.allocate(40).order(NATIVE).putInt(q).putInt(0)
                    .putLong(user(ring.desc)).putLong(user(ring.used)).putLong(user(ring.avail)).putLong(0);
            check(acked(VhostUser.SET_VRING_ADDR, addr.array()), VhostUser.SET_VRING_ADDR);
            check(acked(VhostUser.SET_VRING_CALL, u64(q), call), VhostUser.SET_VRING_CALL);
            check(acked(VhostUser.SET_VRING_KICK, u64(q), kick), VhostUser.SET_VRING_KICK);
            check(acked(VhostUser.SET_VRING_ENABLE, state(q, 1)), VhostUser.SET_VRING_ENABLE);
        }
    }

    private static void check(long ack, int request) throws IOException {
        if (ack != 0) {
            throw new IOException(VhostUser.name(request) + " refused: " + ack);
        }
    }

    static long user(long guestAddress) {
        return USER_BASE + (guestAddress - GUEST_BASE);
    }

    /** One request through queue {@code q}: returns the status and fills {@code data} on reads. */
    int request(int q, int type, long sector, RingDriver.Buf data, boolean indirect) throws IOException {
        RingDriver ring = rings.get(q);
        RingDriver.Buf status = ring.writable(1);
        List<RingDriver.Buf> bufs = data == null ? List.of(ring.readable(RingDriver.header(type, sector)), status)
                : List.of(ring.readable(RingDriver.header(type, sector)), data, status);
        ring.usedEvent(ring.usedIndex()); // as a driver waiting for this request (ignored without EVENT_IDX)
        ring.publish(ring.place(bufs, indirect));
        EventFds.signal(kicks.get(q));
        List<RingDriver.Used> used = ring.collect(1);
        assertTrue(EventFds.readWithin(calls.get(q), 5000), "no interrupt on queue " + q);
        ring.resetDescriptors();
        assertEquals(data != null && data.writable() ? data.length() + 1 : 1, used.get(0).length());
        return memory.read8(status.address());
    }

    /** GET_VRING_BASE: stops the ring and answers its next available index. */
    int stop(int queue) throws IOException {
        send(VhostUser.GET_VRING_BASE, 0, state(queue, 0));
        Reply r = receive();
        if (r == null || r.payload().remaining() != 8 || r.payload().getInt(0) != queue) {
            throw new IOException("bad GET_VRING_BASE reply: " + r);
        }
        return r.payload().getInt(4);
    }

    /** Ends the connection under a read blocked in it (which an interrupt would not end); nothing once closed. */
    void shutdown() {
        if (!closed) {
            UnixSockets.shutdown(socket);
        }
    }

    @Override
    public void close() {
        closed = true;
        UnixSockets.close(socket);
        for (int fd : kicks) {
            EventFds.close(fd);
        }
        for (int fd : calls) {
            EventFds.close(fd);
        }
        SharedMemory.close(memfd);
        arena.close();
    }
}
