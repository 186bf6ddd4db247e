package io.github.qcowloom.virtio;

/** Numbers of virtio-blk (virtio 1.2, 5.2) and of the virtio core that the device uses. */
public final class VirtioBlk {
    private VirtioBlk() {
    }

    // Feature bits (5.2.3 and 6).
    public static final int F_SIZE_MAX = 1;
    public static final int F_SEG_MAX = 2;
    public static final int F_RO = 5;
    public static final int F_BLK_SIZE = 6;
    public static final int F_FLUSH = 9;
    public static final int F_TOPOLOGY = 10;
    public static final int F_MQ = 12;
    public static final int F_DISCARD = 13;
    public static final int F_WRITE_ZEROES = 14;
    public static final int F_RING_INDIRECT_DESC = 28;
    public static final int F_RING_EVENT_IDX = 29;
    public static final int F_VERSION_1 = 32;

    // Request types (5.2.6).
    public static final int T_IN = 0;
    public static final int T_OUT = 1;
    public static final int T_FLUSH = 4;
    public static final int T_GET_ID = 8;
    public static final int T_DISCARD = 11;
    public static final int T_WRITE_ZEROES = 13;

    // Status byte.
    public static final int S_OK = 0;
    public static final int S_IOERR = 1;
    public static final int S_UNSUPP = 2;

    /** Flag of a discard or write-zeroes segment: the device may deallocate. */
    public static final int WRITE_ZEROES_FLAG_UNMAP = 1;

    /** Request offsets are in 512-byte sectors whatever the block size. */
    public static final int SECTOR = 512;
    /** GET_ID's answer. */
    public static final int ID_BYTES = 20;
    /** The request header: type, reserved, sector. */
    public static final int HEADER_BYTES = 16;
    /** A discard or write-zeroes segment: sector, num_sectors, flags. */
    public static final int SEGMENT_BYTES = 16;

    static long bit(int feature) {
        return 1L << feature;
    }
}
