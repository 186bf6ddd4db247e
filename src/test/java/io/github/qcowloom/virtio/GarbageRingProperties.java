package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.testing.RingDriver;
import io.github.qcowloom.image.RawImage;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;

/**
 * A driver that writes garbage: random descriptors (addresses inside memory, across its end, in a gap between
 * two regions, far away; any length; any flags, INDIRECT included, with random indirect tables), random heads and
 * available indices. Whatever it writes, kicks return normally, every request taken completes or the device
 * breaks, and the device writes guest memory only in the used ring and in buffers that some descriptor marked
 * device-writable.
 */
class GarbageRingProperties {
    private static final long GAP_REGION = 0x1000000;
    private static final int GAP_SIZE = 64 * 1024;
    private static final int MAIN = 256 * 1024;

    @Property(tries = 120)
    void garbageNeverEscapesTheWritableBuffers(@ForAll long seed) throws Exception {
        Random random = new Random(seed);
        ByteBuffer main = ByteBuffer.allocate(MAIN);
        ByteBuffer far = ByteBuffer.allocate(GAP_SIZE);
        BufferGuestMemory memory = new BufferGuestMemory(List.of(new BufferGuestMemory.Region(RingDriver.BASE, main),
                new BufferGuestMemory.Region(GAP_REGION, far)));
        int size = 1 << (1 + random.nextInt(5));
        RingDriver driver = new RingDriver(memory, MAIN, size, random.nextInt(0x10000));
        long tables = driver.alloc(64 * 16);
        long data = driver.alloc(64 * 1024);
        for (long a = data; a < data + 64 * 1024; a += 16) {
            // Plausible headers everywhere, so that some garbage chains decode as requests.
            memory.writeLe32(a, random.nextInt(16));
            memory.writeLe64(a + 8, random.nextInt(256));
        }
        int slots = size + 64;
        for (int i = 0; i < slots; i++) {
            long at = i < size ? driver.desc + 16L * i : tables + 16L * (i - size);
            long address = switch (random.nextInt(8)) {
                case 0 -> tables + 16L * random.nextInt(64);
                case 1 -> RingDriver.BASE + MAIN - random.nextInt(64);
                case 2 -> GAP_REGION - 16 - random.nextInt(4096);
                case 3 -> GAP_REGION + random.nextInt(GAP_SIZE);
                case 4 -> random.nextLong();
                default -> data + 16L * random.nextInt(64 * 1024 / 16 - 1);
            };
            int length = switch (random.nextInt(6)) {
                case 0 -> -1 - random.nextInt(16);
                case 1 -> 0;
                case 2 -> 16 * (1 + random.nextInt(8));
                default -> 1 + random.nextInt(4096);
            };
            int flags = random.nextInt(8);
            int next = random.nextInt(4) == 0 ? random.nextInt(0x10000) : random.nextInt(Math.min(size, 8));
            driver.writeRaw(at, address, length, flags, next);
        }
        byte[] before = snapshot(main, far);
        try (RawImage disk = VirtioBlkProperties.disk();
                VirtioBlkDevice device = new VirtioBlkDevice(disk, VirtioBlkConfig.defaults(), ExecutionModel.VIRTUAL,
                        q -> { })) {
            device.acknowledge(VirtioBlk.bit(VirtioBlk.F_VERSION_1) | VirtioBlk.bit(VirtioBlk.F_RING_INDIRECT_DESC)
                    | (random.nextBoolean() ? VirtioBlk.bit(VirtioBlk.F_RING_EVENT_IDX) : 0));
            device.startQueue(0, memory, driver.layout());
            for (int round = 0; round < 4 && !device.broken(); round++) {
                int n = random.nextInt(size + 2);
                for (int i = 0; i < n; i++) {
                    driver.publish(random.nextInt(8) == 0 ? random.nextInt(0x10000) : random.nextInt(size));
                }
                device.kick(0);
                long deadline = System.nanoTime() + 5_000_000_000L;
                while (device.inFlight(0) > 0 && System.nanoTime() < deadline) {
                    Thread.onSpinWait();
                }
                assertTrue(device.inFlight(0) == 0, "requests still in flight after 5 s");
            }
            byte[] after = snapshot(main, far);
            for (int i = 0; i < before.length; i++) {
                if (before[i] != after[i]) {
                    long address = i < MAIN ? RingDriver.BASE + i : GAP_REGION + i - MAIN;
                    assertTrue(allowed(memory, driver, tables, slots, size, address),
                            "the device wrote guest address 0x" + Long.toHexString(address)
                                    + " outside the used ring and every writable buffer");
                }
            }
        }
    }

    private static byte[] snapshot(ByteBuffer main, ByteBuffer far) {
        byte[] out = new byte[main.capacity() + far.capacity()];
        main.get(0, out, 0, main.capacity());
        far.get(0, out, main.capacity(), far.capacity());
        return out;
    }

    /** In the used ring, the available ring (the test driver writes it), or a buffer some descriptor marks writable. */
    private static boolean allowed(BufferGuestMemory memory, RingDriver driver, long tables, int slots, int size,
            long address) {
        if (address >= driver.used && address < driver.used + 6 + 8L * size) {
            return true;
        }
        if (address >= driver.avail && address < driver.avail + 6 + 2L * size) {
            return true; // the driver's own writes (published heads)
        }
        for (int i = 0; i < slots; i++) {
            long at = i < size ? driver.desc + 16L * i : tables + 16L * (i - size);
            long a = memory.readLe64(at);
            long len = Integer.toUnsignedLong(memory.readLe32(at + 8));
            int flags = memory.readLe16(at + 12);
            if ((flags & RingDriver.DESC_F_WRITE) != 0 && address - a >= 0 && address - a < len) {
                return true;
            }
        }
        return false;
    }
}
