package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.qcowloom.storage.CountingStorage.Counts;
import java.io.IOException;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

class CountingStorageTest extends StorageContract {
    @Override
    protected Storage createEmpty() {
        return new CountingStorage(new MemoryStorage());
    }

    @Override
    protected Storage createReadOnly(byte[] contents) {
        return new CountingStorage(MemoryStorage.readOnlyCopy(contents));
    }

    @Test
    void countsEveryCompletedCall() throws IOException {
        MemoryStorage memory = new MemoryStorage();
        CountingStorage s = new CountingStorage(memory);
        assertSame(memory, s.delegate());
        s.write(ByteBuffer.allocate(100), 0);
        s.write(ByteBuffer.allocate(50), 200);
        Counts before = s.counts();
        assertEquals(new Counts(0, 0, 2, 150, 0, 0, 0, 0, 0), before);

        s.read(ByteBuffer.allocate(300), 100);
        s.readFully(ByteBuffer.allocate(10), 1000);
        s.flush();
        s.flushRange(0, 10);
        s.punchHole(0, 10);
        s.writeZeroes(0, 10);
        s.setLength(10);
        assertEquals(new Counts(2, 150, 0, 0, 2, 1, 1, 1, 1), s.counts().minus(before));
        assertEquals(2, memory.flushCount()); // its ranged sync is a whole one
    }

    @Test
    void failedCallsAreNotCounted() {
        CountingStorage s = new CountingStorage(MemoryStorage.readOnlyCopy(new byte[10]));
        assertThrows(IOException.class, () -> s.write(ByteBuffer.allocate(1), 0));
        assertEquals(new Counts(0, 0, 0, 0, 0, 0, 0, 0, 0), s.counts());
    }
}
