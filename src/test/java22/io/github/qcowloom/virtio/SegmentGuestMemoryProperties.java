package io.github.qcowloom.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.util.List;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.LongRange;

/**
 * The Java 22+ memory: every access of a random address agrees with the heap implementation, faults included.
 * (VirtioBlkProperties runs the device's model check over segments too, through {@link OffHeapMemory}.)
 */
class SegmentGuestMemoryProperties {
    @Property(tries = 500)
    void segmentsAndBuffersAgree(@ForAll @LongRange(min = 0x0, max = 0x30000) long address,
            @ForAll @IntRange(min = 1, max = 9) int length, @ForAll long value) {
        // Two regions with a gap: [0x10000, 0x18000) and [0x20000, 0x24000).
        try (Arena arena = Arena.ofConfined()) {
            GuestMemory segments = new SegmentGuestMemory(List.of(
                    new SegmentGuestMemory.Region(0x20000, arena.allocate(0x4000)),
                    new SegmentGuestMemory.Region(0x10000, arena.allocate(0x8000))));
            GuestMemory buffers = new BufferGuestMemory(List.of(
                    new BufferGuestMemory.Region(0x20000, ByteBuffer.allocate(0x4000)),
                    new BufferGuestMemory.Region(0x10000, ByteBuffer.allocate(0x8000))));
            for (GuestMemory m : List.of(segments, buffers)) {
                boolean inside = m.contains(address, 8);
                if (inside) {
                    m.writeLe64(address, value);
                } else {
                    assertThrows(GuestMemoryException.class, () -> m.writeLe64(address, value));
                }
            }
            assertEquals(segments.contains(address, length), buffers.contains(address, length));
            if (segments.contains(address, 8)) {
                assertEquals(buffers.readLe64(address), segments.readLe64(address));
                assertEquals(buffers.readLe32(address), segments.readLe32(address));
                assertEquals(buffers.readLe16(address), segments.readLe16(address));
                assertEquals(value & 0xff, segments.read8(address));
                assertEquals(buffers.slice(address, length), segments.slice(address, length));
            }
        }
    }
}
