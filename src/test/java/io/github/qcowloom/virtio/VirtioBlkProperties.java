package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.testing.RingDriver;
import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.LongRange;

/**
 * The device against a driver written from the spec ({@link RingDriver}) and a model of the disk: random batches
 * of every request type, with headers, data and status split across random descriptors, direct or indirect, ring
 * indices that start just below the 16-bit wrap, event index on or off. Reads must return the model's bytes,
 * writes, discards and write-zeroes must change it, each chain must come back once with the right used length.
 */
class VirtioBlkProperties {
    static final int DISK = 64 * 1024;
    static final int SLOT = 4096;

    static RawImage disk() throws IOException {
        MemoryStorage storage = new MemoryStorage();
        storage.setLength(DISK);
        return new RawImage(storage);
    }

    /** What a request must produce. */
    private record Expect(int type, RingDriver.Buf data, RingDriver.Buf status, byte[] readBack, int usedLength) {
    }

    @Property(tries = 80)
    void randomRequestsMatchTheModelDisk(@ForAll long seed, @ForAll @IntRange(min = 3, max = 6) int sizeLog,
            @ForAll boolean eventIndex, @ForAll @IntRange(min = 0, max = 12) int belowWrap,
            @ForAll boolean offHeap) throws Exception {
        // Heap buffers, or the Java 22+ layer's memory segments (off-heap, as a hypervisor's guest RAM).
        GuestMemory memory = offHeap
                ? (GuestMemory) Class.forName("io.github.qcowloom.virtio.OffHeapMemory")
                        .getMethod("allocate", long.class, long.class).invoke(null, RingDriver.BASE, RingDriver.MEMORY)
                : BufferGuestMemory.ofHeap(RingDriver.BASE, RingDriver.MEMORY);
        check(memory, seed, sizeLog, eventIndex, belowWrap);
    }

    /** The model check over {@code memory} ({@link RingDriver#MEMORY} bytes at {@link RingDriver#BASE}). */
    static void check(GuestMemory memory, long seed, int sizeLog, boolean eventIndex, int belowWrap)
            throws Exception {
        Random random = new Random(seed);
        int size = 1 << sizeLog;
        int start = (0x10000 - belowWrap) & 0xffff;
        RingDriver driver = new RingDriver(memory, size, start);
        byte[] model = new byte[DISK];
        AtomicInteger interrupts = new AtomicInteger();
        VirtioBlkConfig config = VirtioBlkConfig.defaults().withSerial("model-disk");
        try (RawImage disk = disk();
                VirtioBlkDevice device = new VirtioBlkDevice(disk, config, ExecutionModel.VIRTUAL,
                        q -> interrupts.incrementAndGet())) {
            long features = VirtioBlk.bit(VirtioBlk.F_VERSION_1) | VirtioBlk.bit(VirtioBlk.F_RING_INDIRECT_DESC)
                    | (eventIndex ? VirtioBlk.bit(VirtioBlk.F_RING_EVENT_IDX) : 0);
            device.acknowledge(features);
            device.startQueue(0, driver.memory, driver.layout());
            for (int batch = 0; batch < 12; batch++) {
                driver.resetBatch();
                // The driver asks for an interrupt at the first chain used in this batch.
                driver.usedEvent(driver.usedIndex());
                int interruptsBefore = interrupts.get();
                List<Integer> slots = new ArrayList<>();
                for (int s = 0; s < DISK / SLOT; s++) {
                    slots.add(s);
                }
                Collections.shuffle(slots, random);
                Map<Integer, Expect> expected = new HashMap<>();
                int wanted = 1 + random.nextInt(Math.min(size, 8));
                for (int r = 0; r < wanted && driver.freeDescriptors() >= 1; r++) {
                    // A chain has at most 7 descriptors (3 header, 3 data, status): direct only if they fit.
                    boolean indirect = driver.freeDescriptors() < 7 || random.nextInt(3) == 0;
                    int slot = slots.get(r);
                    int type = switch (random.nextInt(8)) {
                        case 0, 1 -> VirtioBlk.T_IN;
                        case 2, 3 -> VirtioBlk.T_OUT;
                        case 4 -> VirtioBlk.T_FLUSH;
                        case 5 -> VirtioBlk.T_GET_ID;
                        case 6 -> VirtioBlk.T_DISCARD;
                        default -> VirtioBlk.T_WRITE_ZEROES;
                    };
                    int sectors = 1 + random.nextInt(SLOT / 512);
                    int firstSector = slot * (SLOT / 512) + random.nextInt(SLOT / 512 - sectors + 1);
                    long offset = firstSector * 512L;
                    int bytes = sectors * 512;
                    List<RingDriver.Buf> bufs = new ArrayList<>();
                    split(driver, random, RingDriver.header(type, firstSector), bufs);
                    RingDriver.Buf data = null;
                    byte[] readBack = null;
                    int usedLength = 1;
                    switch (type) {
                        case VirtioBlk.T_IN -> {
                            data = driver.writable(bytes);
                            splitWritable(random, data, bufs);
                            readBack = Arrays.copyOfRange(model, (int) offset, (int) offset + bytes);
                            usedLength = bytes + 1;
                        }
                        case VirtioBlk.T_OUT -> {
                            byte[] payload = new byte[bytes];
                            random.nextBytes(payload);
                            split(driver, random, payload, bufs);
                            System.arraycopy(payload, 0, model, (int) offset, bytes);
                        }
                        case VirtioBlk.T_GET_ID -> {
                            data = driver.writable(VirtioBlk.ID_BYTES);
                            splitWritable(random, data, bufs);
                            readBack = Arrays.copyOf("model-disk".getBytes(StandardCharsets.UTF_8), VirtioBlk.ID_BYTES);
                            usedLength = VirtioBlk.ID_BYTES + 1;
                        }
                        case VirtioBlk.T_DISCARD, VirtioBlk.T_WRITE_ZEROES -> {
                            boolean unmap = type == VirtioBlk.T_WRITE_ZEROES && random.nextBoolean();
                            ByteBuffer seg = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
                            seg.putLong(firstSector).putInt(sectors).putInt(unmap ? 1 : 0);
                            split(driver, random, seg.array(), bufs);
                            Arrays.fill(model, (int) offset, (int) offset + bytes, (byte) 0);
                        }
                        default -> {
                        }
                    }
                    RingDriver.Buf status = driver.writable(1);
                    driver.memory.write8(status.address(), 0xee);
                    bufs.add(status);
                    int head = driver.place(bufs, indirect);
                    expected.put(head, new Expect(type, data, status, readBack, usedLength));
                    driver.publish(head);
                    if (random.nextInt(4) == 0) {
                        device.kick(0);
                    }
                }
                device.kick(0);
                List<RingDriver.Used> used = driver.collect(expected.size());
                for (RingDriver.Used u : used) {
                    Expect e = expected.remove(u.head());
                    assertTrue(e != null, "chain " + u.head() + " used twice or never made available");
                    assertEquals(VirtioBlk.S_OK, driver.memory.read8(e.status().address()), "status of type " + e.type());
                    assertEquals(e.usedLength(), u.length(), "used length of type " + e.type());
                    if (e.readBack() != null) {
                        assertArrayEquals(e.readBack(), driver.bytes(e.data()), "data of type " + e.type());
                    }
                }
                assertTrue(expected.isEmpty());
                if (eventIndex && !used.isEmpty()) {
                    awaitAtLeast(interrupts, interruptsBefore + 1);
                    assertEquals(driver.usedIndex(), driver.availEvent(), "avail_event after the device caught up");
                }
            }
            assertFalse(device.broken(), device.brokenReason());
            ByteBuffer all = ByteBuffer.allocate(DISK);
            disk.read(0, all);
            assertArrayEquals(model, all.array(), "disk against the model");
        }
    }

    static void awaitAtLeast(AtomicInteger counter, int n) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (counter.get() < n && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertTrue(counter.get() >= n, "interrupts " + counter.get() + " < " + n);
    }

    /** Puts {@code bytes} in 1 to 3 device-readable buffers cut at random places. */
    static void split(RingDriver driver, Random random, byte[] bytes, List<RingDriver.Buf> out) {
        int pieces = 1 + random.nextInt(3);
        int at = 0;
        for (int p = 0; p < pieces; p++) {
            int end = p == pieces - 1 ? bytes.length : at + random.nextInt(bytes.length - at + 1);
            if (end > at || p == pieces - 1) {
                out.add(driver.readable(Arrays.copyOfRange(bytes, at, end)));
            }
            at = end;
        }
    }

    /** Describes the writable buffer {@code data} as 1 to 3 descriptors. */
    static void splitWritable(Random random, RingDriver.Buf data, List<RingDriver.Buf> out) {
        int pieces = 1 + random.nextInt(3);
        int at = 0;
        for (int p = 0; p < pieces; p++) {
            int end = p == pieces - 1 ? data.length() : at + random.nextInt(data.length() - at + 1);
            if (end > at) {
                out.add(new RingDriver.Buf(data.address() + at, end - at, true));
            }
            at = end;
        }
    }

    private static RingDriver small(int start) {
        return new RingDriver(BufferGuestMemory.ofHeap(RingDriver.BASE, 8192), 8192, 8, start);
    }

    /** vring_need_event against a direct count of the indices the device moved through. */
    @Property(tries = 1000)
    void eventIndexInterruptsExactlyWhenTheUsedIndexPassesTheEvent(@ForAll @IntRange(min = 0, max = 0xffff) int start,
            @ForAll @IntRange(min = 1, max = 8) int puts, @ForAll @IntRange(min = 0, max = 0xffff) int event) {
        RingDriver driver = small(start);
        SplitVirtqueue ring = new SplitVirtqueue(driver.memory, driver.layout(), true, true, 8);
        ring.put(0, 1); // the first interrupt is always sent; start counting after it
        assertTrue(ring.shouldInterrupt());
        int old = ring.usedIndex();
        driver.usedEvent(event);
        for (int i = 0; i < puts; i++) {
            ring.put(0, 1);
        }
        boolean expected = false;
        for (int k = 0; k < puts; k++) {
            expected |= ((old + k) & 0xffff) == event;
        }
        assertEquals(expected, ring.shouldInterrupt());
    }

    @Property(tries = 200)
    void withoutEventIndexTheFlagDecides(@ForAll boolean noInterrupt, @ForAll @LongRange(min = 1, max = 5) long puts) {
        RingDriver driver = small(0);
        SplitVirtqueue ring = new SplitVirtqueue(driver.memory, driver.layout(), false, true, 8);
        driver.availFlags(noInterrupt ? SplitVirtqueue.AVAIL_F_NO_INTERRUPT : 0);
        for (int i = 0; i < puts; i++) {
            ring.put(0, 1);
            assertEquals(!noInterrupt, ring.shouldInterrupt());
        }
    }
}
