package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.testing.ForwardingBlockDevice;
import io.github.qcowloom.testing.RingDriver;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Each way a driver can get a chain wrong, one at a time: ring-level faults break the device (needs reset, kicks
 * ignored afterwards), request-level faults fail only that request with IOERR or UNSUPP, and the device keeps
 * serving the next, well-formed request.
 */
class VirtioBlkMalformedTest {
    private static final long FEATURES = VirtioBlk.bit(VirtioBlk.F_VERSION_1)
            | VirtioBlk.bit(VirtioBlk.F_RING_INDIRECT_DESC);

    private final List<String> resets = new CopyOnWriteArrayList<>();
    private final RingDriver driver = new RingDriver(16, 0);
    private BlockDevice disk;
    private VirtioBlkDevice device;

    private VirtioBlkDevice start(BlockDevice d, VirtioBlkConfig config, long features) {
        disk = d;
        device = new VirtioBlkDevice(d, config, ExecutionModel.VIRTUAL, new VirtioBlkDevice.Notifier() {
            @Override
            public void interrupt(int queue) {
            }

            @Override
            public void needsReset(int queue, String reason) {
                resets.add(reason);
            }
        });
        device.acknowledge(features);
        device.startQueue(0, driver.memory, driver.layout());
        return device;
    }

    private VirtioBlkDevice start() throws IOException {
        return start(VirtioBlkProperties.disk(), VirtioBlkConfig.defaults(), FEATURES);
    }

    @AfterEach
    void close() throws IOException {
        if (device != null) {
            device.close();
        }
        if (disk != null) {
            disk.close();
        }
    }

    private RingDriver.Buf header(int type, long sector) {
        return driver.readable(RingDriver.header(type, sector));
    }

    /** Publishes, kicks, and returns the status of a well-formed chain's status buffer. */
    private int run(List<RingDriver.Buf> bufs) {
        RingDriver.Buf status = bufs.get(bufs.size() - 1);
        driver.memory.write8(status.address(), 0xee);
        driver.publish(driver.place(bufs, false));
        device.kick(0);
        driver.collect(1);
        driver.resetDescriptors();
        return driver.memory.read8(status.address());
    }

    private void assertStillServes() {
        RingDriver.Buf data = driver.writable(4096);
        assertEquals(VirtioBlk.S_OK, run(List.of(header(VirtioBlk.T_IN, 0), data, driver.writable(1))));
        assertFalse(device.broken());
    }

    private void assertBrokenAfterKick() {
        device.kick(0);
        // Faults of the ring show at once; a missing status byte shows on the request's thread, which sets the
        // broken flag and then gives the notice: wait for both.
        long deadline = System.nanoTime() + 5_000_000_000L;
        while ((!device.broken() || resets.isEmpty()) && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertTrue(device.broken(), "device should need a reset");
        assertEquals(1, resets.size(), "one needs-reset notice");
        // Kicks are ignored until reset; nothing is used.
        int used = driver.usedIndex();
        RingDriver.Buf status = driver.writable(1);
        driver.publish(driver.place(List.of(header(VirtioBlk.T_FLUSH, 0), status), false));
        device.kick(0);
        assertEquals(used, driver.usedIndex());
    }

    @Test
    void aLoopBreaksTheDevice() throws IOException {
        start();
        driver.writeRaw(driver.desc, driver.writable(16).address(), 16, RingDriver.DESC_F_NEXT, 1);
        driver.writeRaw(driver.desc + 16, driver.writable(16).address(), 16, RingDriver.DESC_F_NEXT, 0);
        driver.publish(0);
        assertBrokenAfterKick();
        assertTrue(resets.get(0).contains("longer than"), resets.get(0));
    }

    /**
     * The longest chain a Linux guest sends: one descriptor pointing to an indirect table of seg_max + 2 buffers
     * (header, 126 pages, status), on a queue smaller than that table. The descriptor pointing to the table is not
     * a buffer: counting it broke the device under a real guest's large writes. One buffer more is refused.
     */
    @Test
    void anIndirectTableOfSegMaxBuffersIsServedAndOneMoreBreaksTheDevice() throws IOException {
        start();
        int segMax = VirtioBlkConfig.defaults().segMax();
        List<RingDriver.Buf> write = new ArrayList<>();
        write.add(header(VirtioBlk.T_OUT, 0));
        for (int i = 0; i < segMax; i++) {
            byte[] piece = new byte[VirtioBlk.SECTOR];
            piece[0] = (byte) i;
            write.add(driver.readable(piece));
        }
        RingDriver.Buf status = driver.writable(1);
        write.add(status);
        driver.memory.write8(status.address(), 0xee);
        driver.publish(driver.place(write, true));
        device.kick(0);
        driver.collect(1);
        driver.resetDescriptors();
        assertEquals(VirtioBlk.S_OK, driver.memory.read8(status.address()));
        assertFalse(device.broken(), String.valueOf(device.brokenReason()));
        ByteBuffer back = ByteBuffer.allocate(1);
        disk.read(VirtioBlk.SECTOR * 5L, back);
        assertEquals(5, back.get(0));

        List<RingDriver.Buf> tooLong = new ArrayList<>(write);
        tooLong.add(1, driver.readable(new byte[VirtioBlk.SECTOR]));
        driver.publish(driver.place(tooLong, true));
        assertBrokenAfterKick();
        assertTrue(resets.get(0).contains("at most " + (segMax + 2)), resets.get(0));
    }

    /** One direct buffer before a full indirect table: seg_max + 3 buffers, one more than a chain may have. */
    @Test
    void aDirectBufferBeforeAFullIndirectTableBreaksTheDevice() throws IOException {
        start();
        int max = VirtioBlkConfig.defaults().segMax() + 2;
        long table = driver.alloc(16 * max);
        for (int i = 0; i < max; i++) {
            driver.writeRaw(table + 16L * i, driver.writable(512).address(), 512,
                    RingDriver.DESC_F_WRITE | (i + 1 < max ? RingDriver.DESC_F_NEXT : 0), i + 1);
        }
        driver.writeRaw(driver.desc, driver.readable(RingDriver.header(VirtioBlk.T_IN, 0)).address(), 16,
                RingDriver.DESC_F_NEXT, 1);
        driver.writeRaw(driver.desc + 16, table, 16 * max, RingDriver.DESC_F_INDIRECT, 0);
        driver.publish(0);
        assertBrokenAfterKick();
        assertTrue(resets.get(0).contains("longer than " + max + " buffers"), resets.get(0));
    }

    @Test
    void aLoopInsideAnIndirectTableBreaksTheDevice() throws IOException {
        start();
        long table = driver.alloc(32);
        driver.writeRaw(table, driver.writable(16).address(), 16, RingDriver.DESC_F_WRITE | RingDriver.DESC_F_NEXT, 1);
        driver.writeRaw(table + 16, driver.writable(16).address(), 16,
                RingDriver.DESC_F_WRITE | RingDriver.DESC_F_NEXT, 0);
        driver.writeRaw(driver.desc, table, 32, RingDriver.DESC_F_INDIRECT, 0);
        driver.publish(0);
        assertBrokenAfterKick();
        assertTrue(resets.get(0).contains("longer than"), resets.get(0));
    }

    @Test
    void aNextIndexOutOfTheTableBreaksTheDevice() throws IOException {
        start();
        driver.writeRaw(driver.desc, driver.writable(16).address(), 16, RingDriver.DESC_F_NEXT, 16);
        driver.publish(0);
        assertBrokenAfterKick();
    }

    @Test
    void aHeadOutOfRangeBreaksTheDevice() throws IOException {
        start();
        driver.publish(16);
        assertBrokenAfterKick();
    }

    @Test
    void anAvailableIndexRunningAheadBreaksTheDevice() throws IOException {
        start();
        driver.setAvailIndex(17);
        assertBrokenAfterKick();
        assertTrue(resets.get(0).contains("more than the queue size"), resets.get(0));
    }

    @Test
    void badIndirectTablesBreakTheDevice() throws IOException {
        long table = driver.alloc(64);
        // INDIRECT and NEXT together.
        start();
        driver.writeRaw(driver.desc, table, 32, RingDriver.DESC_F_INDIRECT | RingDriver.DESC_F_NEXT, 1);
        driver.publish(0);
        assertBrokenAfterKick();
    }

    @Test
    void nestedIndirectTablesBreakTheDevice() throws IOException {
        long table = driver.alloc(32);
        driver.writeRaw(table, table, 32, RingDriver.DESC_F_INDIRECT, 0);
        start();
        driver.writeRaw(driver.desc, table, 32, RingDriver.DESC_F_INDIRECT, 0);
        driver.publish(0);
        assertBrokenAfterKick();
    }

    @Test
    void anIndirectTableOfOddLengthOrOutsideMemoryBreaksTheDevice() throws IOException {
        start();
        driver.writeRaw(driver.desc, driver.alloc(32), 17, RingDriver.DESC_F_INDIRECT, 0);
        driver.publish(0);
        assertBrokenAfterKick();
        device.reset();
        resets.clear();
        assertFalse(device.broken());
    }

    @Test
    void anIndirectTableOutsideMemoryBreaksTheDevice() throws IOException {
        start();
        driver.writeRaw(driver.desc, RingDriver.BASE + RingDriver.MEMORY - 16, 32, RingDriver.DESC_F_INDIRECT, 0);
        driver.publish(0);
        assertBrokenAfterKick();
    }

    @Test
    void indirectWithoutTheFeatureBreaksTheDevice() throws IOException {
        start(VirtioBlkProperties.disk(), VirtioBlkConfig.defaults(), VirtioBlk.bit(VirtioBlk.F_VERSION_1));
        List<RingDriver.Buf> bufs = List.of(header(VirtioBlk.T_FLUSH, 0), driver.writable(1));
        driver.publish(driver.place(bufs, true));
        assertBrokenAfterKick();
    }

    @Test
    void aReadableDescriptorAfterAWritableOneBreaksTheDevice() throws IOException {
        start();
        driver.publish(driver.place(List.of(header(VirtioBlk.T_IN, 0), driver.writable(512),
                driver.readable(new byte[1])), false));
        assertBrokenAfterKick();
    }

    @Test
    void aChainWithoutStatusByteBreaksTheDevice() throws IOException {
        start();
        driver.publish(driver.place(List.of(header(VirtioBlk.T_FLUSH, 0)), false));
        assertBrokenAfterKick();
    }

    @Test
    void aStatusByteOutsideMemoryBreaksTheDevice() throws IOException {
        start();
        RingDriver.Buf status = new RingDriver.Buf(RingDriver.BASE + RingDriver.MEMORY, 1, true);
        driver.publish(driver.place(List.of(header(VirtioBlk.T_FLUSH, 0), status), false));
        assertBrokenAfterKick();
    }

    @Test
    void dataOutsideGuestMemoryFailsTheRequestOnly() throws IOException {
        start();
        RingDriver.Buf outside = new RingDriver.Buf(RingDriver.BASE + RingDriver.MEMORY - 256, 512, true);
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_IN, 0), outside, driver.writable(1))));
        RingDriver.Buf far = new RingDriver.Buf(-512, 512, false);
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_OUT, 0), far, driver.writable(1))));
        assertStillServes();
    }

    @Test
    void buffersInTheWrongDirectionFailTheRequest() throws IOException {
        start();
        // A read whose data buffer is device-readable, a write whose data buffer is device-writable.
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_IN, 0), driver.readable(new byte[512]),
                driver.writable(1))));
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_OUT, 0), driver.writable(512),
                driver.writable(1))));
        assertStillServes();
    }

    @Test
    void lengthsThatOverflowOrExceedTheLimitFailTheRequest() throws IOException {
        start();
        long at = driver.alloc(16);
        RingDriver.Buf huge = new RingDriver.Buf(at, -1, true); // 0xffffffff bytes
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_IN, 0), huge, huge, driver.writable(1))));
        assertStillServes();
    }

    @Test
    void rangesOutsideTheDiskOrUnalignedFailTheRequest() throws IOException {
        start(VirtioBlkProperties.disk(), VirtioBlkConfig.defaults().withLogicalBlockSize(4096), FEATURES);
        long lastSector = VirtioBlkProperties.DISK / 512;
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_IN, lastSector), driver.writable(4096),
                driver.writable(1))));
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_IN, -8), driver.writable(4096),
                driver.writable(1))));
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_IN, 1), driver.writable(4096),
                driver.writable(1))));
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_IN, 0), driver.writable(512),
                driver.writable(1))));
        assertEquals(VirtioBlk.S_IOERR, run(List.of(driver.readable(new byte[8]), driver.writable(1))));
        assertStillServes();
    }

    private RingDriver.Buf segment(long sector, int sectors, int flags) {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(sector).putInt(sectors).putInt(flags);
        return driver.readable(b.array());
    }

    @Test
    void unknownTypesAndFlagsAreUnsupported() throws IOException {
        start();
        assertEquals(VirtioBlk.S_UNSUPP, run(List.of(header(99, 0), driver.writable(1))));
        assertEquals(VirtioBlk.S_UNSUPP, run(List.of(header(VirtioBlk.T_DISCARD, 0), segment(0, 8, 1),
                driver.writable(1))));
        assertEquals(VirtioBlk.S_UNSUPP, run(List.of(header(VirtioBlk.T_WRITE_ZEROES, 0), segment(0, 8, 2),
                driver.writable(1))));
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_WRITE_ZEROES, 0), segment(0, 8, 0),
                segment(8, 8, 0), driver.writable(1))), "two segments, one allowed");
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_DISCARD, 0), segment(0, 40000, 0),
                driver.writable(1))), "more sectors than max_discard_sectors");
        assertStillServes();
    }

    @Test
    void aReadOnlyDeviceRefusesWrites() throws IOException {
        start(VirtioBlkProperties.disk(), VirtioBlkConfig.defaults().withReadOnly(true), FEATURES);
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_OUT, 0), driver.readable(new byte[512]),
                driver.writable(1))));
        assertEquals(VirtioBlk.S_IOERR, run(List.of(header(VirtioBlk.T_WRITE_ZEROES, 0), segment(0, 8, 0),
                driver.writable(1))));
        assertEquals(VirtioBlk.S_OK, run(List.of(header(VirtioBlk.T_FLUSH, 0), driver.writable(1))));
        assertStillServes();
    }

    @Test
    void ringsOutsideGuestMemoryAreRefusedAtStart() throws IOException {
        try (BlockDevice d = VirtioBlkProperties.disk();
                VirtioBlkDevice dev = new VirtioBlkDevice(d, VirtioBlkConfig.defaults(), ExecutionModel.VIRTUAL,
                        q -> { })) {
            VirtqueueLayout outside = new VirtqueueLayout(256, RingDriver.BASE + RingDriver.MEMORY - 1024,
                    RingDriver.BASE, RingDriver.BASE + 4096, 0);
            assertThrows(GuestMemoryException.class, () -> dev.startQueue(0, driver.memory, outside));
            assertThrows(IllegalArgumentException.class, () -> new VirtqueueLayout(3, 0, 0, 0, 0));
            assertThrows(IllegalArgumentException.class, () -> new VirtqueueLayout(8, 8, 0, 0, 0));
            assertFalse(dev.started(0));
        }
    }

    /** A disk whose reads wait for a latch, to hold requests in flight. */
    private static BlockDevice gated(BlockDevice inner, CountDownLatch gate, AtomicInteger waiting) {
        return new ForwardingBlockDevice(inner) {
            @Override
            public void read(long offset, ByteBuffer dst) throws IOException {
                waiting.incrementAndGet();
                try {
                    gate.await();
                } catch (InterruptedException e) {
                    throw new IOException(e);
                }
                super.read(offset, dst);
            }
        };
    }

    @Test
    void aDriverReusingHeadsCannotRaiseTheRequestsInFlightAboveTheQueueSize() throws Exception {
        CountDownLatch gate = new CountDownLatch(1);
        AtomicInteger waiting = new AtomicInteger();
        start(gated(VirtioBlkProperties.disk(), gate, waiting), VirtioBlkConfig.defaults(), FEATURES);
        int head = driver.place(List.of(header(VirtioBlk.T_IN, 0), driver.writable(512), driver.writable(1)), false);
        // The same head made available 2 * 16 times, 16 at a time (the index never runs more than 16 ahead of
        // what the device took): the second 16 must wait until requests of the first complete.
        for (int round = 0; round < 2; round++) {
            for (int i = 0; i < 16; i++) {
                driver.publish(head);
            }
            device.kick(0);
            assertTrue(device.inFlight(0) <= 16, "in flight " + device.inFlight(0));
        }
        assertEquals(16, device.inFlight(0));
        gate.countDown();
        driver.collect(32);
        assertFalse(device.broken());
    }

    @Test
    void stoppingAQueueWaitsForItsRequests() throws Exception {
        CountDownLatch gate = new CountDownLatch(1);
        AtomicInteger waiting = new AtomicInteger();
        start(gated(VirtioBlkProperties.disk(), gate, waiting), VirtioBlkConfig.defaults(), FEATURES);
        for (int i = 0; i < 3; i++) {
            driver.publish(driver.place(List.of(header(VirtioBlk.T_IN, 0), driver.writable(512), driver.writable(1)),
                    false));
        }
        device.kick(0);
        CompletableFuture<Integer> stopped = CompletableFuture.supplyAsync(() -> device.stopQueue(0));
        Thread.sleep(100);
        assertFalse(stopped.isDone(), "stop returned with requests in flight");
        gate.countDown();
        assertEquals(3, stopped.get(5, TimeUnit.SECONDS));
        assertEquals(3, driver.usedIndex());
        assertNotNull(driver.collect(3));
        assertEquals(-1, device.stopQueue(0));
    }
}
