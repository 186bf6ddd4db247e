package io.github.qcowloom.virtio;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Guest memory given as {@link MemorySegment}s (a Java 22+ hypervisor's own mappings, or the memfd regions a
 * vhost-user front end shares), one per region. Accesses are bounds-checked against the regions first, then by
 * the segments themselves; a segment whose arena was closed answers IllegalStateException, never a fault.
 * {@link #slice} returns direct buffers over guest memory, so the disk reads and writes it without a copy.
 */
public final class SegmentGuestMemory implements GuestMemory {
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** One region: its guest-physical start and the segment holding its bytes. */
    public record Region(long guestAddress, MemorySegment segment) {
    }

    private final GuestRegions table;
    private final MemorySegment[] segments;

    public SegmentGuestMemory(List<Region> regions) {
        List<GuestRegions.Region> ranges = new ArrayList<>();
        segments = new MemorySegment[regions.size()];
        for (int i = 0; i < regions.size(); i++) {
            segments[i] = regions.get(i).segment();
            ranges.add(new GuestRegions.Region(regions.get(i).guestAddress(), segments[i].byteSize()));
        }
        table = new GuestRegions(ranges);
    }

    private long offset(int slot, long address) {
        return address - table.start(slot);
    }

    @Override
    public ByteBuffer slice(long address, long length) {
        if (length < 1) {
            throw new GuestMemoryException("empty slice at guest address 0x" + Long.toHexString(address));
        }
        long n = Math.min(Math.min(length, table.remainingAt(address)), Integer.MAX_VALUE);
        int slot = table.slot(address, n);
        return segments[slot].asSlice(offset(slot, address), n).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    @Override
    public int read8(long address) {
        int slot = table.slot(address, 1);
        return segments[slot].get(ValueLayout.JAVA_BYTE, offset(slot, address)) & 0xff;
    }

    @Override
    public int readLe16(long address) {
        int slot = table.slot(address, 2);
        return segments[slot].get(LE16, offset(slot, address)) & 0xffff;
    }

    @Override
    public int readLe32(long address) {
        int slot = table.slot(address, 4);
        return segments[slot].get(LE32, offset(slot, address));
    }

    @Override
    public long readLe64(long address) {
        int slot = table.slot(address, 8);
        return segments[slot].get(LE64, offset(slot, address));
    }

    @Override
    public void write8(long address, int value) {
        int slot = table.slot(address, 1);
        segments[slot].set(ValueLayout.JAVA_BYTE, offset(slot, address), (byte) value);
    }

    @Override
    public void writeLe16(long address, int value) {
        int slot = table.slot(address, 2);
        segments[slot].set(LE16, offset(slot, address), (short) value);
    }

    @Override
    public void writeLe32(long address, int value) {
        int slot = table.slot(address, 4);
        segments[slot].set(LE32, offset(slot, address), value);
    }

    @Override
    public void writeLe64(long address, long value) {
        int slot = table.slot(address, 8);
        segments[slot].set(LE64, offset(slot, address), value);
    }

    @Override
    public boolean contains(long address, long length) {
        return table.contains(address, length);
    }
}
