package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import org.junit.jupiter.api.Test;

class MemoryStorageTest extends StorageContract {
    @Override
    protected Storage createEmpty() {
        return new MemoryStorage();
    }

    @Override
    protected Storage createReadOnly(byte[] contents) {
        return MemoryStorage.readOnlyCopy(contents);
    }

    @Test
    void limitRefusesBogusLengthsWithoutAllocating() throws IOException {
        MemoryStorage s = new MemoryStorage(1 << 20);
        assertThrows(IOException.class, () -> s.setLength(Long.MAX_VALUE / 2));
        assertThrows(IOException.class, () -> s.write(ByteBuffer.allocate(2), (1 << 20) - 1));
        assertThrows(IOException.class, () -> s.writeZeroes(1 << 20, 1));
        s.setLength(1 << 20);
        assertEquals(1 << 20, s.size());
        s.write(ByteBuffer.allocate(1), (1 << 20) - 1);
        assertThrows(IllegalArgumentException.class, () -> new MemoryStorage(MemoryStorage.MAX_LIMIT + 1));
    }

    @Test
    void snapshotCopiesContentsAndConstructorCopiesInput() throws IOException {
        byte[] contents = pattern(1000, 1);
        MemoryStorage s = new MemoryStorage(contents);
        contents[0]++;
        s.write(ByteBuffer.wrap(new byte[] {42}), 1500);
        byte[] snapshot = s.snapshot();
        assertEquals(1501, snapshot.length);
        assertEquals((byte) (contents[0] - 1), snapshot[0]);
        assertEquals(42, snapshot[1500]);
        snapshot[1]++;
        assertEquals((byte) (snapshot[1] - 1), s.snapshot()[1]);
    }

    @Test
    void flushCountsAndCloseRefusesIo() throws IOException {
        MemoryStorage s = new MemoryStorage();
        s.flush();
        s.flush();
        assertEquals(2, s.flushCount());
        s.write(ByteBuffer.wrap(new byte[] {1, 2, 3}), 0);
        s.close();
        assertThrows(ClosedChannelException.class, () -> s.read(ByteBuffer.allocate(1), 0));
        assertThrows(ClosedChannelException.class, () -> s.write(ByteBuffer.allocate(1), 0));
        assertArrayEquals(new byte[] {1, 2, 3}, s.snapshot());
    }
}
