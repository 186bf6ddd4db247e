package io.github.qcowloom.virtio;

import io.github.qcowloom.os.SharedMemory;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The guest memory a vhost-user front end shared with SET_MEM_TABLE: each region's descriptor mapped (from file
 * offset 0 through mmap_offset + size, as libvhost-user maps it), the guest-physical view over them, and the
 * translation of the front end's own virtual addresses (which SET_VRING_ADDR uses) to guest-physical ones.
 * Closing unmaps everything; the caller stops every queue first.
 */
final class GuestMappings implements AutoCloseable {
    /** One region as the front end described it. */
    record Region(long guestAddress, long size, long userAddress, long mmapOffset) {
    }

    private final Arena arena;
    private final List<Region> regions;
    private final SegmentGuestMemory memory;

    private GuestMappings(Arena arena, List<Region> regions, SegmentGuestMemory memory) {
        this.arena = arena;
        this.regions = regions;
        this.memory = memory;
    }

    /**
     * Maps {@code regions} from {@code fds} (one each, same order). The descriptors stay open: the caller closes
     * them (a mapping outlives its descriptor). Throws IOException for overlapping, empty or unmappable regions.
     */
    static GuestMappings map(List<Region> regions, int[] fds) throws IOException {
        Arena arena = Arena.ofShared();
        try {
            List<SegmentGuestMemory.Region> views = new ArrayList<>();
            for (int i = 0; i < regions.size(); i++) {
                Region r = regions.get(i);
                if (r.size() < 1 || r.mmapOffset() < 0 || r.mmapOffset() > Long.MAX_VALUE - r.size()) {
                    throw new IOException("memory region " + i + ": " + r.size() + " bytes at mmap offset "
                            + r.mmapOffset());
                }
                MemorySegment mapped = SharedMemory.map(fds[i], r.mmapOffset() + r.size(), arena);
                views.add(new SegmentGuestMemory.Region(r.guestAddress(), mapped.asSlice(r.mmapOffset(), r.size())));
            }
            return new GuestMappings(arena, List.copyOf(regions), new SegmentGuestMemory(views));
        } catch (IOException | RuntimeException e) {
            arena.close();
            if (e instanceof IllegalArgumentException) {
                throw new IOException("memory table: " + e.getMessage(), e);
            }
            throw e;
        }
    }

    GuestMemory memory() {
        return memory;
    }

    int regions() {
        return regions.size();
    }

    /** The guest-physical address of the front end's virtual address {@code userAddress}. */
    long guestAddress(long userAddress) throws IOException {
        for (Region r : regions) {
            if (userAddress - r.userAddress() >= 0 && userAddress - r.userAddress() < r.size()) {
                return r.guestAddress() + (userAddress - r.userAddress());
            }
        }
        throw new IOException("ring address 0x" + Long.toHexString(userAddress) + " is in no memory region");
    }

    @Override
    public void close() {
        arena.close();
    }
}
