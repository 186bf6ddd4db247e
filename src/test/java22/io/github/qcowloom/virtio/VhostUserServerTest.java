package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.os.EventFds;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.testing.OpenDescriptors;
import io.github.qcowloom.testing.RingDriver;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The whole vhost-user-blk server against {@link VhostUserFrontEnd}, a front end written from the protocol text:
 * start-up as QEMU does it, writes and reads on several queues through the shared memfd, interrupts on the call
 * eventfds, GET_VRING_BASE after in-flight requests, reconnection to a fresh state, malformed messages closing
 * only their connection, and no descriptor left open (counted in /proc/self/fd).
 */
class VhostUserServerTest {
    private static final int DISK = 4 << 20;

    @TempDir
    Path dir;
    private RawImage disk;
    private VhostUserBlkServer server;
    private Path socket;

    @BeforeEach
    void start() throws IOException {
        MemoryStorage storage = new MemoryStorage();
        storage.setLength(DISK);
        disk = new RawImage(storage);
        socket = dir.resolve("vhost.sock");
        server = VhostUserBlkServer.start(socket, disk, VirtioBlkConfig.defaults().withNumQueues(4)
                .withSerial("vhost-test"), ExecutionModel.VIRTUAL);
    }

    @AfterEach
    void stop() throws IOException {
        server.close();
        disk.close();
    }

    private void session(int queues, boolean eventIndex, long seed) throws IOException {
        Random random = new Random(seed);
        try (VhostUserFrontEnd fe = new VhostUserFrontEnd(socket)) {
            assertEquals(4, fe.requestU64(VhostUser.GET_QUEUE_NUM));
            byte[] config = fe.config(VirtioBlkConfig.CONFIG_BYTES);
            ByteBuffer c = ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(DISK / 512, c.getLong(0), "capacity");
            assertEquals(512, c.getInt(20), "blk_size");
            assertEquals(4, c.getShort(34), "num_queues");
            fe.start(queues, 64, eventIndex);
            byte[][] written = new byte[queues][];
            for (int q = 0; q < queues; q++) {
                RingDriver ring = fe.rings.get(q);
                written[q] = new byte[8192];
                random.nextBytes(written[q]);
                long sector = 100L * q;
                assertEquals(VirtioBlk.S_OK, fe.request(q, VirtioBlk.T_OUT, sector, ring.readable(written[q]),
                        random.nextBoolean()));
            }
            for (int q = queues - 1; q >= 0; q--) {
                RingDriver ring = fe.rings.get(q);
                RingDriver.Buf back = ring.writable(8192);
                assertEquals(VirtioBlk.S_OK, fe.request(q, VirtioBlk.T_IN, 100L * q, back, random.nextBoolean()));
                assertArrayEquals(written[q], ring.bytes(back), "queue " + q);
                assertEquals(VirtioBlk.S_OK, fe.request(q, VirtioBlk.T_FLUSH, 0, null, false));
                RingDriver.Buf id = ring.writable(VirtioBlk.ID_BYTES);
                assertEquals(VirtioBlk.S_OK, fe.request(q, VirtioBlk.T_GET_ID, 0, id, false));
                assertEquals("vhost-test", new String(ring.bytes(id), 0, 10));
            }
            for (int q = 0; q < queues; q++) {
                assertEquals(4, fe.stop(q), "next available index of queue " + q);
            }
        }
    }

    @Test
    void aFrontEndWritesAndReadsOnEveryQueueAndReconnects() throws Exception {
        long before = OpenDescriptors.count();
        session(4, true, 1);
        session(1, false, 2); // a second front end: fresh features, memory and rings
        session(2, true, 3);
        OpenDescriptors.await(before);
        ByteBuffer check = ByteBuffer.allocate(512);
        disk.read(0, check);
        assertNotEquals(0, check.getLong(0), "data written by the first front end");
    }

    /** Sends one malformed message after a normal start-up; the server must hang up, then serve the next one. */
    private void refused(String why, Consumer<VhostUserFrontEnd> malformed) throws IOException {
        try (VhostUserFrontEnd fe = new VhostUserFrontEnd(socket)) {
            fe.requestU64(VhostUser.GET_FEATURES);
            malformed.accept(fe);
            assertTrue(hungUp(fe), why);
        }
        try (VhostUserFrontEnd fe = new VhostUserFrontEnd(socket)) {
            assertEquals(4, fe.requestU64(VhostUser.GET_QUEUE_NUM), "served again after: " + why);
        }
    }

    /** True once the server closed the connection (end of stream, or a reset when it left bytes unread). */
    private static boolean hungUp(VhostUserFrontEnd fe) {
        try {
            while (fe.receive() != null) {
                continue;
            }
            return true;
        } catch (IOException e) {
            return e.getMessage().contains("reset by peer");
        }
    }

    private interface Sender {
        void send(VhostUserFrontEnd fe) throws IOException;
    }

    private static Consumer<VhostUserFrontEnd> sending(Sender s) {
        return fe -> {
            try {
                s.send(fe);
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        };
    }

    @Test
    void malformedMessagesCloseOnlyTheirConnection() throws Exception {
        long before = OpenDescriptors.count();
        refused("unknown request", sending(fe -> fe.send(99, 0, new byte[0])));
        refused("wrong payload size", sending(fe -> fe.send(VhostUser.GET_VRING_BASE, 0, new byte[3])));
        refused("ring index out of range", sending(fe -> fe.send(VhostUser.SET_VRING_NUM, 0,
                VhostUserFrontEnd.state(4, 64))));
        refused("ring size not a power of 2", sending(fe -> fe.send(VhostUser.SET_VRING_NUM, 0,
                VhostUserFrontEnd.state(0, 100))));
        refused("payload too large", sending(fe -> fe.send(VhostUser.SET_FEATURES, 0, new byte[5000])));
        refused("features not offered", sending(fe -> fe.send(VhostUser.SET_FEATURES, 0,
                VhostUserFrontEnd.u64(1L << 60))));
        refused("nine regions", sending(fe -> {
            ByteBuffer b = ByteBuffer.allocate(8 + 32 * 9).order(ByteOrder.nativeOrder()).putInt(9);
            fe.send(VhostUser.SET_MEM_TABLE, 0, b.array(), fe.memfd());
        }));
        refused("descriptor missing", sending(fe -> {
            ByteBuffer b = ByteBuffer.allocate(8 + 64).order(ByteOrder.nativeOrder()).putInt(2);
            fe.send(VhostUser.SET_MEM_TABLE, 0, b.array(), fe.memfd());
        }));
        refused("overlapping regions", sending(fe -> {
            ByteBuffer b = ByteBuffer.allocate(8 + 64).order(ByteOrder.nativeOrder()).putInt(2).putInt(0);
            for (int i = 0; i < 2; i++) {
                b.putLong(VhostUserFrontEnd.GUEST_BASE).putLong(4096).putLong(VhostUserFrontEnd.USER_BASE).putLong(0);
            }
            fe.send(VhostUser.SET_MEM_TABLE, 0, b.array(), fe.memfd(), fe.memfd());
        }));
        refused("a region larger than its descriptor's file", sending(fe -> {
            ByteBuffer b = ByteBuffer.allocate(8 + 32).order(ByteOrder.nativeOrder()).putInt(1).putInt(0);
            b.putLong(VhostUserFrontEnd.GUEST_BASE).putLong(64L << 20).putLong(VhostUserFrontEnd.USER_BASE).putLong(0);
            fe.send(VhostUser.SET_MEM_TABLE, 0, b.array(), fe.memfd());
        }));
        refused("kick without descriptor", sending(fe -> fe.send(VhostUser.SET_VRING_KICK, 0,
                VhostUserFrontEnd.u64(0))));
        refused("ring started before its memory", sending(fe -> {
            int kick = EventFds.create();
            try {
                fe.send(VhostUser.SET_VRING_KICK, 0, VhostUserFrontEnd.u64(0), kick);
            } finally {
                EventFds.close(kick);
            }
        }));
        refused("config larger than the space", sending(fe -> {
            ByteBuffer b = ByteBuffer.allocate(12).order(ByteOrder.nativeOrder()).putInt(200).putInt(100).putInt(0);
            fe.send(VhostUser.GET_CONFIG, 0, b.array());
        }));
        refused("bad version", sending(fe -> fe.send(VhostUser.GET_FEATURES, 0x2, new byte[0])));
        refused("ring outside memory", sending(fe -> {
            fe.send(VhostUser.SET_MEM_TABLE, 0, fe.memTable(), fe.memfd());
            fe.send(VhostUser.SET_VRING_NUM, 0, VhostUserFrontEnd.state(0, 64));
            ByteBuffer addr = ByteBuffer.allocate(40).order(ByteOrder.nativeOrder()).putInt(0).putInt(0)
                    .putLong(1234).putLong(1234).putLong(1234).putLong(0);
            fe.send(VhostUser.SET_VRING_ADDR, 0, addr.array());
            int kick = EventFds.create();
            try {
                fe.send(VhostUser.SET_VRING_KICK, 0, VhostUserFrontEnd.u64(0), kick);
            } finally {
                EventFds.close(kick);
            }
        }));
        OpenDescriptors.await(before);
    }

    /**
     * QEMU sends a new memory table whenever the guest's memory map changes, rings running or not. The rings stop
     * (their requests finish on the old mapping), resume on the new one, and look for requests at once: a kick
     * the stopped ring's waiter took would otherwise never be answered.
     */
    @Test
    void aNewMemoryTableUnderRunningRingsKeepsThemServing() throws Exception {
        try (VhostUserFrontEnd fe = new VhostUserFrontEnd(socket)) {
            fe.start(1, 16, true);
            RingDriver ring = fe.rings.get(0);
            RingDriver.Buf status = ring.writable(1);
            ring.memory.write8(status.address(), 0xee);
            ring.publish(ring.place(List.of(ring.readable(RingDriver.header(VirtioBlk.T_FLUSH, 0)), status), false));
            // No kick: as if the old waiter had taken it just before the ring stopped.
            assertEquals(0, fe.acked(VhostUser.SET_MEM_TABLE, fe.memTable(), fe.memfd()));
            ring.collect(1);
            ring.resetDescriptors();
            assertEquals(VirtioBlk.S_OK, ring.memory.read8(status.address()));
            RingDriver.Buf data = ring.writable(512);
            assertEquals(VirtioBlk.S_OK, fe.request(0, VirtioBlk.T_IN, 0, data, true));
        }
    }

    @Test
    void aBrokenRingSignalsItsErrorDescriptorAndAFrontEndResetsIt() throws Exception {
        try (VhostUserFrontEnd fe = new VhostUserFrontEnd(socket)) {
            int err = EventFds.create();
            try {
                fe.start(1, 16, true);
                // Acknowledged before the kick: the kick's thread must find the error descriptor in place.
                assertEquals(0, fe.acked(VhostUser.SET_VRING_ERR, VhostUserFrontEnd.u64(0), err));
                RingDriver ring = fe.rings.get(0);
                ring.publish(16); // head out of range
                EventFds.signal(fe.kicks.get(0));
                assertTrue(EventFds.readWithin(err, 5000), "error eventfd");
                fe.stop(0);
                // As QEMU restarts a device: features again, the ring again from the index it left.
                fe.send(VhostUser.SET_FEATURES, 0, VhostUserFrontEnd.u64(VirtioBlk.bit(VirtioBlk.F_VERSION_1)
                        | VhostUser.F_PROTOCOL_FEATURES));
                assertEquals(0, fe.acked(VhostUser.SET_VRING_BASE, VhostUserFrontEnd.state(0, 1)));
                assertEquals(0, fe.acked(VhostUser.SET_VRING_KICK, VhostUserFrontEnd.u64(0), fe.kicks.get(0)));
                assertEquals(0, fe.acked(VhostUser.SET_VRING_CALL, VhostUserFrontEnd.u64(0), fe.calls.get(0)));
                assertEquals(0, fe.acked(VhostUser.SET_VRING_ENABLE, VhostUserFrontEnd.state(0, 1)));
                assertEquals(VirtioBlk.S_OK, fe.request(0, VirtioBlk.T_FLUSH, 0, null, false));
            } finally {
                EventFds.close(err);
            }
        }
    }
}
