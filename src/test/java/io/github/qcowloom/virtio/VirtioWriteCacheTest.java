package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.crashkit.CrashSimStorage;
import io.github.qcowloom.crashkit.CrashState;
import io.github.qcowloom.exec.ExecutionModel;
import io.github.qcowloom.image.RawImage;
import io.github.qcowloom.testing.RingDriver;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The write cache follows the driver, as in QEMU's virtio-blk: without VIRTIO_BLK_F_CONFIG_WCE (not offered here)
 * the cache is writeback if and only if the driver accepts VIRTIO_BLK_F_FLUSH (virtio 1.2, 5.2.5.1; Linux's
 * virtblk_get_cache_mode). A driver that cannot flush (SeaBIOS, boot loaders) must find each completed write
 * durable, whatever crash follows.
 */
class VirtioWriteCacheTest {
    private static final int DISK = 1 << 20;

    /**
     * Runs one 4 KiB write over a crash-simulating disk; returns every state a host crash after its completion may
     * leave: those after every flush the disk saw (a crash during the request may lose it, as it may on any disk).
     */
    private static List<CrashState> afterOneWrite(long features, boolean resetFirst) throws Exception {
        CrashSimStorage storage = new CrashSimStorage(new byte[DISK]);
        RingDriver driver = new RingDriver(16, 0);
        try (RawImage disk = new RawImage(storage);
                VirtioBlkDevice device = new VirtioBlkDevice(disk, VirtioBlkConfig.defaults(), ExecutionModel.VIRTUAL,
                        queue -> { })) {
            if (resetFirst) { // a driver that could flush, then a reset, then one that cannot
                device.acknowledge(VirtioBlk.bit(VirtioBlk.F_VERSION_1) | VirtioBlk.bit(VirtioBlk.F_FLUSH));
                device.reset();
            }
            device.acknowledge(features);
            device.startQueue(0, driver.memory, driver.layout());
            RingDriver.Buf status = driver.writable(1);
            driver.memory.write8(status.address(), 0xee);
            driver.publish(driver.place(List.of(driver.readable(RingDriver.header(VirtioBlk.T_OUT, 0)),
                    driver.readable(filled(4096, (byte) 'W')), status), false));
            device.kick(0);
            driver.collect(1);
            assertEquals(VirtioBlk.S_OK, driver.memory.read8(status.address()), "the request completed");
        }
        long flushes = storage.flushCount();
        return storage.crashStates().filter(s -> s.durableFlushes() == flushes).toList();
    }

    private static byte[] filled(int n, byte b) {
        byte[] a = new byte[n];
        Arrays.fill(a, b);
        return a;
    }

    /** One write-zeroes segment: sectors 0..7, without unmap. */
    private static byte[] zeroesSegment() {
        return ByteBuffer.allocate(VirtioBlk.SEGMENT_BYTES).order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .putLong(0, 0).putInt(8, 8).putInt(12, 0).array();
    }

    private static boolean holdsWrite(CrashState s) {
        return s.image()[0] == 'W' && s.image()[4095] == 'W';
    }

    @Test
    void aDriverWithoutFlushFindsEveryCompletedWriteDurable() throws Exception {
        List<CrashState> states = afterOneWrite(VirtioBlk.bit(VirtioBlk.F_VERSION_1), false);
        assertFalse(states.isEmpty());
        assertTrue(states.stream().allMatch(VirtioWriteCacheTest::holdsWrite), "a crash state lost the write");
    }

    @Test
    void aDriverThatFlushesGetsAWritebackCache() throws Exception {
        List<CrashState> states = afterOneWrite(VirtioBlk.bit(VirtioBlk.F_VERSION_1)
                | VirtioBlk.bit(VirtioBlk.F_FLUSH), false);
        assertTrue(states.stream().anyMatch(s -> !holdsWrite(s)), "the write was synced without a flush");
    }

    @Test
    void aResetForgetsTheFlushingDriversCache() throws Exception {
        List<CrashState> states = afterOneWrite(VirtioBlk.bit(VirtioBlk.F_VERSION_1), true);
        assertTrue(states.stream().allMatch(VirtioWriteCacheTest::holdsWrite), "a crash state lost the write");
    }

    /** Write zeroes over a disk of zeroes: what shows is whether it was synced before it completed. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void writeZeroesIsWrittenThroughWithoutFlushOnly(boolean driverFlushes) throws Exception {
        CrashSimStorage storage = new CrashSimStorage(new byte[DISK]);
        RingDriver driver = new RingDriver(16, 0);
        try (RawImage disk = new RawImage(storage);
                VirtioBlkDevice device = new VirtioBlkDevice(disk, VirtioBlkConfig.defaults(), ExecutionModel.VIRTUAL,
                        queue -> { })) {
            device.acknowledge(VirtioBlk.bit(VirtioBlk.F_VERSION_1) | VirtioBlk.bit(VirtioBlk.F_WRITE_ZEROES)
                    | (driverFlushes ? VirtioBlk.bit(VirtioBlk.F_FLUSH) : 0));
            device.startQueue(0, driver.memory, driver.layout());
            RingDriver.Buf status = driver.writable(1);
            driver.publish(driver.place(List.of(driver.readable(RingDriver.header(VirtioBlk.T_WRITE_ZEROES, 0)),
                    driver.readable(zeroesSegment()), status), false));
            device.kick(0);
            driver.collect(1);
            assertEquals(VirtioBlk.S_OK, driver.memory.read8(status.address()));
            // collect returns once the request is in the used ring, which BlkQueue writes after the request ran.
            assertEquals(driverFlushes ? 0 : 1, storage.flushCount(), "synced before it completed");
        }
    }
}
