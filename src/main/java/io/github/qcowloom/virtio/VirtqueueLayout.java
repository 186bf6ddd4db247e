package io.github.qcowloom.virtio;

/**
 * Where the driver put one split virtqueue (virtio 1.2, 2.7): its size and the guest-physical addresses of the
 * descriptor table, the available ring and the used ring, and the index of the first available entry the device
 * has not taken yet (0 for a fresh queue, the saved value when a queue resumes).
 */
public record VirtqueueLayout(int size, long descriptorTable, long availableRing, long usedRing, int nextAvailable) {
    /** The largest split queue (2.7: "Queue Size ... maximum 32768"). */
    public static final int MAX_SIZE = 32768;

    public VirtqueueLayout {
        if (size < 1 || size > MAX_SIZE || Integer.bitCount(size) != 1) {
            throw new IllegalArgumentException("queue size must be a power of 2 from 1 to " + MAX_SIZE + ": " + size);
        }
        // 2.7.2: alignment of the three parts.
        if ((descriptorTable & 15) != 0 || (availableRing & 1) != 0 || (usedRing & 3) != 0) {
            throw new IllegalArgumentException("misaligned virtqueue: descriptors 0x" + Long.toHexString(descriptorTable)
                    + ", available 0x" + Long.toHexString(availableRing) + ", used 0x" + Long.toHexString(usedRing));
        }
        if (nextAvailable < 0 || nextAvailable > 0xffff) {
            throw new IllegalArgumentException("available index " + nextAvailable);
        }
    }

    long descriptorBytes() {
        return 16L * size;
    }

    /** flags, idx, ring[size], used_event. */
    long availableBytes() {
        return 6L + 2L * size;
    }

    /** flags, idx, ring[size] of (id, len), avail_event. */
    long usedBytes() {
        return 6L + 8L * size;
    }
}
