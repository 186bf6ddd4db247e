package io.github.qcowloom.virtio;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * What the device offers and the bounds it enforces, with qemu-storage-daemon's vhost-user-blk values as defaults:
 * queues and their largest size, the segments and bytes one request may carry, the logical block size, read-only,
 * discard and write-zeroes limits, the serial GET_ID answers, and whether every write is made durable before it
 * completes whatever the driver accepts ({@code writeThrough}: QEMU's export option {@code writethrough}, qemu-nbd's
 * cache modes writethrough and directsync). {@link #configSpace} encodes the device configuration layout of virtio
 * 1.2, 5.2.4.
 */
public record VirtioBlkConfig(int numQueues, int maxQueueSize, int segMax, long maxRequestBytes,
        int logicalBlockSize, boolean readOnly, int maxDiscardSectors, int maxDiscardSegments,
        int maxWriteZeroesSectors, int maxWriteZeroesSegments, String serial, boolean writeThrough) {

    /** The virtio_blk_config bytes up to and including write_zeroes_may_unmap and its padding. */
    public static final int CONFIG_BYTES = 60;

    public VirtioBlkConfig {
        if (numQueues < 1 || numQueues > 256) {
            throw new IllegalArgumentException("number of queues must be from 1 to 256: " + numQueues);
        }
        if (maxQueueSize < 2 || maxQueueSize > VirtqueueLayout.MAX_SIZE || Integer.bitCount(maxQueueSize) != 1) {
            throw new IllegalArgumentException("queue size must be a power of 2 from 2 to " + VirtqueueLayout.MAX_SIZE
                    + ": " + maxQueueSize);
        }
        if (segMax < 1 || segMax > 65536) {
            throw new IllegalArgumentException("seg_max must be from 1 to 65536: " + segMax);
        }
        if (maxRequestBytes < 4096) {
            throw new IllegalArgumentException("maximum request bytes " + maxRequestBytes);
        }
        if (logicalBlockSize < 512 || logicalBlockSize > 65536 || Integer.bitCount(logicalBlockSize) != 1) {
            throw new IllegalArgumentException("logical block size must be a power of 2 from 512 to 65536: "
                    + logicalBlockSize);
        }
        if (maxDiscardSectors < 1 || maxDiscardSegments < 1 || maxDiscardSegments > 256
                || maxWriteZeroesSectors < 1 || maxWriteZeroesSegments < 1 || maxWriteZeroesSegments > 256) {
            throw new IllegalArgumentException("discard and write-zeroes limits must be positive (segments <= 256)");
        }
        if (serial.getBytes(StandardCharsets.UTF_8).length > VirtioBlk.ID_BYTES) {
            throw new IllegalArgumentException("serial longer than " + VirtioBlk.ID_BYTES + " bytes: " + serial);
        }
    }

    /** One queue of up to 1024 entries, seg_max 126, 512-byte blocks, 32768-sector discards: as qemu-storage-daemon. */
    public static VirtioBlkConfig defaults() {
        return new VirtioBlkConfig(1, 1024, 128 - 2, 64L << 20, 512, false, 32768, 1, 32768, 1, "qcow2-loom", false);
    }

    public VirtioBlkConfig withNumQueues(int n) {
        return new VirtioBlkConfig(n, maxQueueSize, segMax, maxRequestBytes, logicalBlockSize, readOnly,
                maxDiscardSectors, maxDiscardSegments, maxWriteZeroesSectors, maxWriteZeroesSegments, serial,
                writeThrough);
    }

    public VirtioBlkConfig withReadOnly(boolean ro) {
        return new VirtioBlkConfig(numQueues, maxQueueSize, segMax, maxRequestBytes, logicalBlockSize, ro,
                maxDiscardSectors, maxDiscardSegments, maxWriteZeroesSectors, maxWriteZeroesSegments, serial,
                writeThrough);
    }

    public VirtioBlkConfig withLogicalBlockSize(int bytes) {
        return new VirtioBlkConfig(numQueues, maxQueueSize, segMax, maxRequestBytes, bytes, readOnly,
                maxDiscardSectors, maxDiscardSegments, maxWriteZeroesSectors, maxWriteZeroesSegments, serial,
                writeThrough);
    }

    public VirtioBlkConfig withSerial(String id) {
        return new VirtioBlkConfig(numQueues, maxQueueSize, segMax, maxRequestBytes, logicalBlockSize, readOnly,
                maxDiscardSectors, maxDiscardSegments, maxWriteZeroesSectors, maxWriteZeroesSegments, id,
                writeThrough);
    }

    public VirtioBlkConfig withWriteThrough(boolean v) {
        return new VirtioBlkConfig(numQueues, maxQueueSize, segMax, maxRequestBytes, logicalBlockSize, readOnly,
                maxDiscardSectors, maxDiscardSegments, maxWriteZeroesSectors, maxWriteZeroesSegments, serial, v);
    }

    /** The device features offered: the data path's and the ring's (the transport adds its own). */
    public long features() {
        long f = VirtioBlk.bit(VirtioBlk.F_SEG_MAX) | VirtioBlk.bit(VirtioBlk.F_BLK_SIZE)
                | VirtioBlk.bit(VirtioBlk.F_TOPOLOGY) | VirtioBlk.bit(VirtioBlk.F_FLUSH) | VirtioBlk.bit(VirtioBlk.F_MQ)
                | VirtioBlk.bit(VirtioBlk.F_RING_INDIRECT_DESC) | VirtioBlk.bit(VirtioBlk.F_RING_EVENT_IDX)
                | VirtioBlk.bit(VirtioBlk.F_VERSION_1);
        if (readOnly) {
            f |= VirtioBlk.bit(VirtioBlk.F_RO);
        } else {
            f |= VirtioBlk.bit(VirtioBlk.F_DISCARD) | VirtioBlk.bit(VirtioBlk.F_WRITE_ZEROES);
        }
        return f;
    }

    /**
     * The most buffers one chain may have: seg_max data buffers plus the header and the status byte, or the queue
     * size if larger. Not the smaller of the two: the spec forbids chains longer than the queue, but Linux fills
     * indirect tables up to seg_max + 2 whatever the queue size, and QEMU's back ends take them.
     */
    int maxChain(int queueSize) {
        return Math.max(queueSize, segMax + 2);
    }

    /** The configuration space for a disk of {@code capacityBytes} (5.2.4), little-endian. */
    public byte[] configSpace(long capacityBytes) {
        ByteBuffer b = ByteBuffer.allocate(CONFIG_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        int blockSectors = logicalBlockSize / VirtioBlk.SECTOR;
        b.putLong(0, capacityBytes / VirtioBlk.SECTOR);          // capacity, in 512-byte sectors
        b.putInt(8, 0);                                          // size_max (not offered)
        b.putInt(12, segMax);                                    // seg_max
        // 16..19: geometry, not offered
        b.putInt(20, logicalBlockSize);                          // blk_size
        b.put(24, (byte) 0);                                     // physical_block_exp
        b.put(25, (byte) 0);                                     // alignment_offset
        b.putShort(26, (short) 1);                               // min_io_size (blocks)
        b.putInt(28, 1);                                         // opt_io_size (blocks)
        b.put(32, (byte) 0);                                     // writeback (CONFIG_WCE not offered)
        b.putShort(34, (short) numQueues);                       // num_queues
        b.putInt(36, maxDiscardSectors);                         // max_discard_sectors
        b.putInt(40, maxDiscardSegments);                        // max_discard_seg
        b.putInt(44, blockSectors);                              // discard_sector_alignment
        b.putInt(48, maxWriteZeroesSectors);                     // max_write_zeroes_sectors
        b.putInt(52, maxWriteZeroesSegments);                    // max_write_zeroes_seg
        b.put(56, (byte) 1);                                     // write_zeroes_may_unmap
        return b.array();
    }
}
