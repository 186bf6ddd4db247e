package io.github.qcowloom.virtio;

import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;

/**
 * The ring mechanics of one split virtqueue (virtio 1.2, 2.7): taking descriptor chains from the available ring
 * (direct and indirect descriptors, 16-bit indices that wrap) and returning them through the used ring, with the
 * notification rules of VIRTIO_RING_F_EVENT_IDX (2.7.7, 2.7.10) or of the flags without it.
 *
 * <p>Not thread-safe by itself: the taking side ({@link #take}, {@link #enableKicks}) and the returning side
 * ({@link #put}, {@link #shouldInterrupt}) each need one thread at a time; the caller holds one lock per side
 * ({@link BlkQueue} says which). The guest writes the rings meanwhile: reads of the available index are
 * followed by an acquire fence, the used element is released before the used index, and the decisions to
 * interrupt or to sleep are preceded by a full fence, as libvhost-user's barriers do.
 */
final class SplitVirtqueue {
    static final int DESC_F_NEXT = 1;
    static final int DESC_F_WRITE = 2;
    static final int DESC_F_INDIRECT = 4;
    static final int AVAIL_F_NO_INTERRUPT = 1;

    private final GuestMemory memory;
    private final VirtqueueLayout layout;
    private final int size;
    private final boolean eventIndex;
    private final boolean indirect;
    private final int maxChain;

    /** Taking side: the next available-ring index to read (free-running, mod 2^16). */
    private int nextAvailable;
    /** Returning side: the used index (free-running) and the used index at the last interrupt. */
    private int usedIndex;
    private int signalledUsed;
    private boolean signalledValid;

    /**
     * A queue over {@code memory}; throws {@link GuestMemoryException} unless its three parts lie in guest memory.
     * {@code maxChain} bounds the buffers one chain may have (direct and indirect together; a loop reaches it).
     */
    SplitVirtqueue(GuestMemory memory, VirtqueueLayout layout, boolean eventIndex, boolean indirect, int maxChain) {
        this.memory = memory;
        this.layout = layout;
        this.size = layout.size();
        this.eventIndex = eventIndex;
        this.indirect = indirect;
        this.maxChain = maxChain;
        require(layout.descriptorTable(), layout.descriptorBytes(), "descriptor table");
        require(layout.availableRing(), layout.availableBytes(), "available ring");
        require(layout.usedRing(), layout.usedBytes(), "used ring");
        this.nextAvailable = layout.nextAvailable();
        // The used index lives in guest memory: a resumed queue continues from it (as libvhost-user does).
        this.usedIndex = memory.readLe16(layout.usedRing() + 2);
    }

    private void require(long address, long length, String what) {
        if (!memory.contains(address, length)) {
            throw new GuestMemoryException("the " + what + " (" + length + " bytes at guest address 0x"
                    + Long.toHexString(address) + ") is outside guest memory");
        }
    }

    int size() {
        return size;
    }

    /** The next available-ring index the device will read: GET_VRING_BASE's answer. */
    int nextAvailable() {
        return nextAvailable;
    }

    int usedIndex() {
        return usedIndex;
    }

    /** Chains made available and not yet taken; throws if the driver moved its index further than the queue size. */
    int pending() {
        int idx = memory.readLe16(layout.availableRing() + 2);
        VarHandle.acquireFence(); // ring entries are read after the index that published them
        int n = (idx - nextAvailable) & 0xffff;
        if (n > size) {
            throw new VirtqueueException("the driver moved the available index from " + nextAvailable + " to " + idx
                    + ", more than the queue size " + size);
        }
        return n;
    }

    /**
     * The next available chain, or null if none is pending. A structural error of the chain throws
     * {@link VirtqueueException} after the entry has been taken.
     */
    DescriptorChain take() {
        if (pending() == 0) {
            return null;
        }
        int head = memory.readLe16(layout.availableRing() + 4 + 2L * (nextAvailable & (size - 1)));
        nextAvailable = (nextAvailable + 1) & 0xffff;
        if (eventIndex) {
            // avail_event: the driver need not kick again before adding the entry we will read next.
            memory.writeLe16(layout.usedRing() + 4 + 8L * size, nextAvailable);
        }
        if (head >= size) {
            throw new VirtqueueException("available head " + head + " is not below the queue size " + size);
        }
        return chain(head);
    }

    /**
     * After {@link #take} found nothing: asks for a kick at the next entry, then looks again. True if entries
     * arrived meanwhile (the caller takes them rather than sleeping: their kick may have been suppressed).
     */
    boolean enableKicks() {
        if (eventIndex) {
            memory.writeLe16(layout.usedRing() + 4 + 8L * size, nextAvailable);
        }
        VarHandle.fullFence();
        return pending() > 0;
    }

    private DescriptorChain chain(int head) {
        List<DescriptorChain.Buffer> buffers = new ArrayList<>();
        long table = layout.descriptorTable();
        int tableSize = size;
        boolean inIndirect = false;
        boolean sawWritable = false;
        int i = head;
        while (true) {
            long d = table + 16L * i;
            long address;
            int length;
            int flags;
            int next;
            try {
                address = memory.readLe64(d);
                length = memory.readLe32(d + 8);
                flags = memory.readLe16(d + 12);
                next = memory.readLe16(d + 14);
            } catch (GuestMemoryException e) {
                throw new VirtqueueException("indirect descriptor table of chain " + head + ": " + e.getMessage());
            }
            if ((flags & DESC_F_INDIRECT) != 0) {
                if (!indirect) {
                    throw new VirtqueueException("indirect descriptor in chain " + head
                            + " but VIRTIO_RING_F_INDIRECT_DESC was not negotiated");
                }
                if (inIndirect) {
                    throw new VirtqueueException("indirect descriptor inside an indirect table (chain " + head + ")");
                }
                if ((flags & DESC_F_NEXT) != 0) {
                    throw new VirtqueueException("descriptor with both INDIRECT and NEXT (chain " + head + ")");
                }
                long bytes = Integer.toUnsignedLong(length);
                if (bytes == 0 || bytes % 16 != 0 || bytes / 16 > maxChain) {
                    throw new VirtqueueException("indirect table of " + bytes + " bytes in chain " + head
                            + " (a multiple of 16, at most " + maxChain + " descriptors)");
                }
                if (!memory.contains(address, bytes)) {
                    throw new VirtqueueException("indirect table of chain " + head + " (" + bytes
                            + " bytes at guest address 0x" + Long.toHexString(address) + ") is outside guest memory");
                }
                table = address;
                tableSize = (int) (bytes / 16);
                inIndirect = true;
                i = 0;
                continue;
            }
            // The bound counts buffers, not the descriptor that points to an indirect table: Linux fills a
            // table with seg_max + 2 buffers (header, data, status) and puts it behind one more descriptor.
            if (buffers.size() == maxChain) {
                throw new VirtqueueException("descriptor chain at head " + head + " is longer than " + maxChain
                        + " buffers (a loop?)");
            }
            boolean writable = (flags & DESC_F_WRITE) != 0;
            if (!writable && sawWritable) {
                throw new VirtqueueException("device-readable descriptor after a device-writable one (chain " + head
                        + ")");
            }
            sawWritable |= writable;
            buffers.add(new DescriptorChain.Buffer(address, length, writable));
            if ((flags & DESC_F_NEXT) == 0) {
                return new DescriptorChain(head, List.copyOf(buffers));
            }
            i = next;
            if (i >= tableSize) {
                throw new VirtqueueException("next descriptor " + i + " is outside the table of " + tableSize
                        + " (chain " + head + ")");
            }
        }
    }

    /** Returns chain {@code head} to the driver with {@code written} bytes written into its writable buffers. */
    void put(int head, int written) {
        long element = layout.usedRing() + 4 + 8L * (usedIndex & (size - 1));
        memory.writeLe32(element, head);
        memory.writeLe32(element + 4, written);
        VarHandle.releaseFence(); // the element is visible before the index that publishes it
        usedIndex = (usedIndex + 1) & 0xffff;
        memory.writeLe16(layout.usedRing() + 2, usedIndex);
    }

    /**
     * True if the driver wants an interrupt for the chains put since the last interrupt (2.7.10: its used_event
     * with EVENT_IDX, else the NO_INTERRUPT flag); records the interrupt as sent when it answers true.
     */
    boolean shouldInterrupt() {
        VarHandle.fullFence(); // the used index is visible before we read what the driver asked for
        boolean interrupt;
        if (eventIndex) {
            int event = memory.readLe16(layout.availableRing() + 4 + 2L * size);
            int old = signalledUsed;
            boolean valid = signalledValid;
            // vring_need_event(event, new, old): the driver's event index lies in (old, new].
            interrupt = !valid || ((usedIndex - event - 1) & 0xffff) < ((usedIndex - old) & 0xffff);
        } else {
            interrupt = (memory.readLe16(layout.availableRing()) & AVAIL_F_NO_INTERRUPT) == 0;
        }
        if (interrupt) {
            signalledUsed = usedIndex;
            signalledValid = true;
        }
        return interrupt;
    }
}
