package io.github.qcowloom.virtio;

import java.lang.foreign.Arena;
import java.util.List;

/**
 * Off-heap guest memory for the base layer's tests (which compile for Java 21 and reach this class reflectively):
 * one segment region, freed by the garbage collector.
 *
 * <p>Java 22+ tests compile into the project's module beside its Java 22+ sources, so they do not see the base
 * tests of the same package; helpers shared both ways go through public types like this one.
 */
public final class OffHeapMemory {
    private OffHeapMemory() {
    }

    public static GuestMemory allocate(long guestAddress, long bytes) {
        return new SegmentGuestMemory(List.of(new SegmentGuestMemory.Region(guestAddress,
                Arena.ofAuto().allocate(bytes, 4096))));
    }
}
