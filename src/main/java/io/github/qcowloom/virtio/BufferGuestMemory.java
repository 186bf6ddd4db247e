package io.github.qcowloom.virtio;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Guest memory held in {@link ByteBuffer}s (heap or direct, e.g. a {@code MappedByteBuffer} of a memfd on Java 21),
 * one per region. Tests use heap buffers; embedders on Java 22+ may prefer {@code SegmentGuestMemory}.
 */
public final class BufferGuestMemory implements GuestMemory {
    /** One region: its guest-physical start and the buffer (position 0 to capacity) holding its bytes. */
    public record Region(long guestAddress, ByteBuffer buffer) {
    }

    private final GuestRegions table;
    private final ByteBuffer[] buffers;

    public BufferGuestMemory(List<Region> regions) {
        List<GuestRegions.Region> ranges = new ArrayList<>();
        buffers = new ByteBuffer[regions.size()];
        for (int i = 0; i < regions.size(); i++) {
            Region r = regions.get(i);
            buffers[i] = r.buffer().duplicate().clear().order(ByteOrder.LITTLE_ENDIAN);
            ranges.add(new GuestRegions.Region(r.guestAddress(), buffers[i].capacity()));
        }
        table = new GuestRegions(ranges);
    }

    /** One heap region of {@code size} bytes at guest address {@code start}. */
    public static BufferGuestMemory ofHeap(long start, int size) {
        return new BufferGuestMemory(List.of(new Region(start, ByteBuffer.allocate(size))));
    }


    private int offset(int slot, long address) {
        return (int) (address - table.start(slot));
    }

    @Override
    public ByteBuffer slice(long address, long length) {
        if (length < 1) {
            throw new GuestMemoryException("empty slice at guest address 0x" + Long.toHexString(address));
        }
        long n = Math.min(Math.min(length, table.remainingAt(address)), Integer.MAX_VALUE);
        int slot = table.slot(address, n);
        return buffers[slot].slice(offset(slot, address), (int) n).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Override
    public int read8(long address) {
        int slot = table.slot(address, 1);
        return buffers[slot].get(offset(slot, address)) & 0xff;
    }

    @Override
    public int readLe16(long address) {
        int slot = table.slot(address, 2);
        return buffers[slot].getShort(offset(slot, address)) & 0xffff;
    }

    @Override
    public int readLe32(long address) {
        int slot = table.slot(address, 4);
        return buffers[slot].getInt(offset(slot, address));
    }

    @Override
    public long readLe64(long address) {
        int slot = table.slot(address, 8);
        return buffers[slot].getLong(offset(slot, address));
    }

    @Override
    public void write8(long address, int value) {
        int slot = table.slot(address, 1);
        buffers[slot].put(offset(slot, address), (byte) value);
    }

    @Override
    public void writeLe16(long address, int value) {
        int slot = table.slot(address, 2);
        buffers[slot].putShort(offset(slot, address), (short) value);
    }

    @Override
    public void writeLe32(long address, int value) {
        int slot = table.slot(address, 4);
        buffers[slot].putInt(offset(slot, address), value);
    }

    @Override
    public void writeLe64(long address, long value) {
        int slot = table.slot(address, 8);
        buffers[slot].putLong(offset(slot, address), value);
    }

    @Override
    public boolean contains(long address, long length) {
        return table.contains(address, length);
    }
}
