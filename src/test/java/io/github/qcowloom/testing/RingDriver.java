package io.github.qcowloom.testing;

import io.github.qcowloom.virtio.BufferGuestMemory;
import io.github.qcowloom.virtio.GuestMemory;
import io.github.qcowloom.virtio.VirtqueueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * A virtio driver's side of one split virtqueue in test guest memory, written from the spec (2.7): places chains
 * in the descriptor table (directly or through an indirect table), publishes heads in the available ring, and
 * reads the used ring. Buffers come from a bump allocator over a data area, reset between batches.
 */
public final class RingDriver {
    public static final int DESC_F_NEXT = 1;
    public static final int DESC_F_WRITE = 2;
    public static final int DESC_F_INDIRECT = 4;
    public static final int AVAIL_F_NO_INTERRUPT = 1;

    public static final long BASE = 0x10000;
    public static final int MEMORY = 4 << 20;

    /** A buffer of a chain. */
    public record Buf(long address, int length, boolean writable) {
    }

    /** A used element. */
    public record Used(int head, int length) {
    }

    public final GuestMemory memory;
    public final int size;
    public final long desc;
    public final long avail;
    public final long used;
    private final long dataStart;
    private final long dataEnd;
    private long dataTop;
    private int nextDesc;
    private int availIdx;
    private int usedSeen;

    public RingDriver(int size, int startIndex) {
        this(BufferGuestMemory.ofHeap(BASE, MEMORY), size, startIndex);
    }

    public RingDriver(GuestMemory memory, int size, int startIndex) {
        this(memory, MEMORY, size, startIndex);
    }

    /** A driver whose rings and buffers lie in the first {@code bytes} of guest memory from {@link #BASE}. */
    public RingDriver(GuestMemory memory, int bytes, int size, int startIndex) {
        this(memory, BASE, bytes, size, startIndex);
    }

    /** A driver whose rings and buffers lie in the {@code bytes} of guest memory from {@code base}. */
    public RingDriver(GuestMemory memory, long base, int bytes, int size, int startIndex) {
        this.memory = memory;
        this.size = size;
        this.desc = base;
        this.avail = desc + 16L * size;
        this.used = (avail + 6 + 2L * size + 3) & ~3L;
        this.dataStart = (used + 6 + 8L * size + 4095) & ~4095L;
        this.dataEnd = base + bytes;
        this.dataTop = dataStart;
        this.availIdx = startIndex;
        this.usedSeen = startIndex;
        memory.writeLe16(avail + 2, startIndex);
        memory.writeLe16(used + 2, startIndex);
    }

    public VirtqueueLayout layout() {
        return new VirtqueueLayout(size, desc, avail, used, availIdx);
    }

    /** Frees every buffer and descriptor (call when no chain is outstanding). */
    public void resetBatch() {
        dataTop = dataStart;
        nextDesc = 0;
    }

    /** Frees every descriptor, keeping the buffers. */
    public void resetDescriptors() {
        nextDesc = 0;
    }

    public long alloc(int bytes) {
        long at = (dataTop + 7) & ~7L;
        if (at + bytes > dataEnd) {
            throw new IllegalStateException("test data area full");
        }
        dataTop = at + bytes;
        return at;
    }

    /** A buffer holding {@code bytes} (device-readable). */
    public Buf readable(byte[] bytes) {
        long at = alloc(bytes.length);
        memory.write(at, ByteBuffer.wrap(bytes));
        return new Buf(at, bytes.length, false);
    }

    /** A zeroed device-writable buffer. */
    public Buf writable(int length) {
        long at = alloc(length);
        memory.write(at, ByteBuffer.allocate(length));
        return new Buf(at, length, true);
    }

    public static byte[] header(int type, long sector) {
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(type).putInt(0).putLong(sector);
        return b.array();
    }

    /** Places a chain (directly, or through one indirect table) and returns its head; does not publish it. */
    public int place(List<Buf> bufs, boolean indirect) {
        if (indirect) {
            long table = alloc(16 * bufs.size());
            for (int i = 0; i < bufs.size(); i++) {
                writeDesc(table + 16L * i, bufs.get(i), i + 1 < bufs.size(), i + 1);
            }
            int head = takeDesc();
            writeRaw(desc + 16L * head, table, 16 * bufs.size(), DESC_F_INDIRECT, 0);
            return head;
        }
        int[] ids = new int[bufs.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = takeDesc();
        }
        for (int i = 0; i < ids.length; i++) {
            writeDesc(desc + 16L * ids[i], bufs.get(i), i + 1 < ids.length, i + 1 < ids.length ? ids[i + 1] : 0);
        }
        return ids[0];
    }

    private int takeDesc() {
        if (nextDesc >= size) {
            throw new IllegalStateException("descriptor table full");
        }
        return nextDesc++;
    }

    public int freeDescriptors() {
        return size - nextDesc;
    }

    private void writeDesc(long at, Buf b, boolean next, int nextIndex) {
        int flags = (b.writable() ? DESC_F_WRITE : 0) | (next ? DESC_F_NEXT : 0);
        writeRaw(at, b.address(), b.length(), flags, nextIndex);
    }

    public void writeRaw(long at, long address, int length, int flags, int next) {
        memory.writeLe64(at, address);
        memory.writeLe32(at + 8, length);
        memory.writeLe16(at + 12, flags);
        memory.writeLe16(at + 14, next);
    }

    /** Makes {@code head} available (publishes the index at once). */
    public void publish(int head) {
        memory.writeLe16(avail + 4 + 2L * (availIdx & (size - 1)), head);
        availIdx = (availIdx + 1) & 0xffff;
        memory.writeLe16(avail + 2, availIdx);
    }

    /** Sets the available index as a (possibly lying) driver would. */
    public void setAvailIndex(int idx) {
        availIdx = idx & 0xffff;
        memory.writeLe16(avail + 2, availIdx);
    }

    public void usedEvent(int index) {
        memory.writeLe16(avail + 4 + 2L * size, index);
    }

    public void availFlags(int flags) {
        memory.writeLe16(avail, flags);
    }

    public int usedIndex() {
        return memory.readLe16(used + 2);
    }

    public int availEvent() {
        return memory.readLe16(used + 4 + 8L * size);
    }

    /** Waits until {@code n} more chains are used (5 s at most) and returns them in used order. */
    public List<Used> collect(int n) {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (((usedIndex() - usedSeen) & 0xffff) < n) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("only " + ((usedIndex() - usedSeen) & 0xffff) + " of " + n
                        + " chains used after 5 s");
            }
            Thread.onSpinWait();
            Thread.yield();
        }
        List<Used> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long e = used + 4 + 8L * (usedSeen & (size - 1));
            out.add(new Used(memory.readLe32(e), memory.readLe32(e + 4)));
            usedSeen = (usedSeen + 1) & 0xffff;
        }
        return out;
    }

    public byte[] bytes(Buf b) {
        ByteBuffer out = ByteBuffer.allocate(b.length());
        memory.read(b.address(), out);
        return out.array();
    }
}
