package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.testing.FuzzInputs;
import io.github.qcowloom.testing.RingDriver;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The fuzz target for what a guest we do not control puts in its memory: one virtqueue's available ring, descriptor
 * table, indirect tables, request headers, discard segments and data, all from the fuzzer's bytes, against a small
 * qcow2 disk in memory, as a virtio-blk device (and so the vhost-user-blk back end) meets them.
 *
 * <p>The input's first byte picks the queue size (2 to 256), its second the ring features the driver accepted
 * (indirect descriptors, event index, flush); the rest is guest memory from address 0, where the rings lie as
 * {@link RingDriver} lays them out (descriptor table, available ring, used ring, then buffers). Two kicks take
 * whatever the available ring offers. A kick may break the device (the driver broke the ring rules) and a request
 * may fail with an I/O error; a kick that throws, a request that ends in an unchecked exception
 * ({@link VirtioBlkDevice.Notifier#defect}), or one still running after 5 s is a finding. Requests run one at a
 * time on one thread, so a run replays exactly. The seeds are rings a driver fills: a read, a write, a flush, a
 * get-id, a discard, a write-zeroes, a chain through an indirect table and a request of an unknown type;
 * {@code ./mvnw test -Pfuzz -Dfuzz.class=VirtqueueFuzzTest -Dfuzz.target=guestRing} fuzzes them.
 */
class VirtqueueFuzzTest {
    private static final int MEMORY = 64 * 1024;
    private static final long DISK_BYTES = 1 << 20;
    private static final ExecutionModel ONE_THREAD = ExecutionModel.parse("pool:1");
    /** Rings a driver fills: every kind of request, directly and through an indirect table. */
    private static final List<Seed> SEEDS = List.of(seed("requests", 4, 0, false),
            seed("requests-indirect-event-idx", 4, 3, true), seed("requests-256-flush", 7, 7, true));
    /** The image file of an empty 1 MiB disk, made once; each run opens a fresh copy (MemoryStorage copies it). */
    private static byte[] emptyImage;

    @BeforeAll
    static void setUp() throws IOException {
        emptyImage = FuzzInputs.emptyQcow2(DISK_BYTES);
        for (Seed seed : SEEDS) {
            FuzzInputs.seed(VirtqueueFuzzTest.class, "guestRing", seed.name(), seed.bytes());
        }
    }

    @FuzzTest
    void guestRing(byte[] data) throws Exception {
        if (data.length >= 2) {
            run(data);
        }
    }

    /** The seeds are what they say: every request taken and answered OK, but the unknown type UNSUPP. */
    @Test
    void theSeedsAreServedWhole() throws Exception {
        for (Seed seed : SEEDS) {
            Outcome o = run(seed.bytes());
            assertNull(o.broken(), seed.name());
            assertEquals(7, o.memory().readLe16(o.layout().usedRing() + 2), seed.name() + ": chains used");
            List<Integer> lengths = new ArrayList<>();
            for (int i = 0; i < 7; i++) {
                lengths.add(o.memory().readLe32(o.layout().usedRing() + 4 + 8L * i + 4)); // bytes written
            }
            assertEquals(List.of(4096 + 1, 1, 1, VirtioBlk.ID_BYTES + 1, 1, 1, 1), lengths, seed.name());
            List<Integer> statuses = new ArrayList<>();
            for (long status : seed.statuses()) {
                statuses.add(o.memory().read8(status));
            }
            List<Integer> expected = new ArrayList<>(Collections.nCopies(6, VirtioBlk.S_OK));
            expected.add(VirtioBlk.S_UNSUPP);
            assertEquals(expected, statuses, seed.name());
        }
    }

    /** What a run left: why the device broke (null if it did not), and guest memory with its rings. */
    private record Outcome(String broken, BufferGuestMemory memory, VirtqueueLayout layout) {
    }

    private static Outcome run(byte[] data) throws Exception {
        ByteBuffer bytes = ByteBuffer.allocate(MEMORY);
        BufferGuestMemory memory = new BufferGuestMemory(List.of(new BufferGuestMemory.Region(0, bytes)));
        VirtqueueLayout layout = new RingDriver(memory, 0, MEMORY, 1 << (1 + (data[0] & 7)), 0).layout();
        bytes.put(0, data, 2, Math.min(data.length - 2, MEMORY)); // over the indices the driver set
        AtomicReference<RuntimeException> defect = new AtomicReference<>();
        try (Qcow2Image image = Qcow2Image.open(new MemoryStorage(emptyImage, 64L << 20, false), null,
                OpenOptions.readWriteDefaults().withFollowReferences(false));
                VirtioBlkDevice device = new VirtioBlkDevice(image, VirtioBlkConfig.defaults(), ONE_THREAD,
                        new VirtioBlkDevice.Notifier() {
                            @Override
                            public void interrupt(int queue) {
                            }

                            @Override
                            public void defect(int queue, RuntimeException e) {
                                defect.compareAndSet(null, e);
                            }
                        })) {
            device.acknowledge(features(data[1]) & device.features());
            device.startQueue(0, memory, layout);
            for (int kick = 0; kick < 2 && !device.broken(); kick++) {
                device.kick(0);
                long deadline = System.nanoTime() + 5_000_000_000L;
                while (device.inFlight(0) > 0) {
                    if (System.nanoTime() > deadline) {
                        throw new AssertionError(device.inFlight(0) + " requests still running after 5 s");
                    }
                    Thread.sleep(1);
                }
            }
            if (defect.get() != null) {
                throw defect.get();
            }
            return new Outcome(device.brokenReason(), memory, layout);
        }
    }

    /** The features a driver accepted, from the input's second byte: indirect, event index, flush. */
    private static long features(byte b) {
        return VirtioBlk.bit(VirtioBlk.F_VERSION_1)
                | ((b & 1) != 0 ? VirtioBlk.bit(VirtioBlk.F_RING_INDIRECT_DESC) : 0)
                | ((b & 2) != 0 ? VirtioBlk.bit(VirtioBlk.F_RING_EVENT_IDX) : 0)
                | ((b & 4) != 0 ? VirtioBlk.bit(VirtioBlk.F_FLUSH) : 0)
                | VirtioBlk.bit(VirtioBlk.F_DISCARD) | VirtioBlk.bit(VirtioBlk.F_WRITE_ZEROES);
    }

    /** A seed: its input, and where each request's status byte lies in guest memory. */
    private record Seed(String name, byte[] bytes, List<Long> statuses) {
    }

    /**
     * A ring of 2^(sizeLog + 1) entries as a driver fills it, one request of each kind published from available
     * index 0, the last through an indirect table where {@code indirect}; the input's bytes up to the last non-zero
     * byte of memory.
     */
    private static Seed seed(String name, int sizeLog, int featureBits, boolean indirect) {
        int size = 1 << (sizeLog + 1);
        BufferGuestMemory memory = BufferGuestMemory.ofHeap(0, MEMORY);
        RingDriver driver = new RingDriver(memory, 0, MEMORY, size, 0);
        List<List<RingDriver.Buf>> chains = new ArrayList<>();
        chains.add(List.of(driver.readable(RingDriver.header(VirtioBlk.T_IN, 0)), driver.writable(4096),
                driver.writable(1)));
        byte[] payload = new byte[4096];
        for (int i = 0; i < payload.length; i++) {
            payload[i] = (byte) (i * 7);
        }
        chains.add(List.of(driver.readable(RingDriver.header(VirtioBlk.T_OUT, 8)), driver.readable(payload),
                driver.writable(1)));
        chains.add(List.of(driver.readable(RingDriver.header(VirtioBlk.T_FLUSH, 0)), driver.writable(1)));
        chains.add(List.of(driver.readable(RingDriver.header(VirtioBlk.T_GET_ID, 0)),
                driver.writable(VirtioBlk.ID_BYTES), driver.writable(1)));
        chains.add(List.of(driver.readable(RingDriver.header(VirtioBlk.T_DISCARD, 0)),
                driver.readable(segment(128, 16, 0)), driver.writable(1)));
        chains.add(List.of(driver.readable(RingDriver.header(VirtioBlk.T_WRITE_ZEROES, 0)),
                driver.readable(segment(0, 8, VirtioBlk.WRITE_ZEROES_FLAG_UNMAP)), driver.writable(1)));
        chains.add(List.of(driver.readable(RingDriver.header(77, 0)), driver.writable(1)));
        List<Long> statuses = new ArrayList<>();
        for (int i = 0; i < chains.size(); i++) {
            boolean last = i == chains.size() - 1;
            driver.publish(driver.place(chains.get(i), indirect && last));
            statuses.add(chains.get(i).getLast().address());
        }
        byte[] all = new byte[MEMORY];
        memory.slice(0, MEMORY).get(0, all);
        int end = all.length;
        while (end > 0 && all[end - 1] == 0) {
            end--; // memory past the input reads as zeroes
        }
        byte[] out = new byte[2 + end];
        out[0] = (byte) sizeLog;
        out[1] = (byte) featureBits;
        System.arraycopy(all, 0, out, 2, end);
        return new Seed(name, out, statuses);
    }

    /** A discard or write-zeroes segment (virtio 1.2, 5.2.6). */
    private static byte[] segment(long sector, int sectors, int flags) {
        return ByteBuffer.allocate(VirtioBlk.SEGMENT_BYTES).order(ByteOrder.LITTLE_ENDIAN).putLong(sector)
                .putInt(sectors).putInt(flags).array();
    }
}
