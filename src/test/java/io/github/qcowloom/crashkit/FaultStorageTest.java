package io.github.qcowloom.crashkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import io.github.qcowloom.storage.StorageEvent;
import java.io.IOException;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/** Faults at named events and at counted operations. */
class FaultStorageTest {
    private static void write(FaultStorage s) throws IOException {
        s.write(ByteBuffer.wrap(new byte[] {1}), 0);
    }

    @Test
    void eventArmsAOnceFault() throws IOException {
        FaultStorage s = new FaultStorage(new MemoryStorage()).failAfterEvent(StorageEvent.L2_UPDATE, Errno.EIO, true);
        write(s);
        s.event(StorageEvent.L1_UPDATE);
        write(s);
        Storage hook = s;
        hook.event(StorageEvent.L2_UPDATE);
        InjectedFault f = assertThrows(InjectedFault.class, () -> write(s));
        assertEquals("EIO", f.getMessage());
        assertEquals(Errno.EIO, f.errno());
        assertEquals("after event l2_update", f.trigger());
        write(s);
        assertEquals(1, s.faultsInjected());
    }

    @Test
    void nthFlushFailsFromThenOn() throws IOException {
        FaultStorage s = new FaultStorage(new MemoryStorage()).failAt(IoKind.FLUSH, 2, Errno.ENOSPC, false);
        s.flush();
        write(s);
        assertEquals("ENOSPC", assertThrows(InjectedFault.class, s::flush).getMessage());
        assertThrows(InjectedFault.class, () -> write(s));
        assertThrows(InjectedFault.class, () -> s.read(ByteBuffer.allocate(1), 0));
        s.clearRules();
        write(s);
        assertEquals(3, s.faultsInjected());
    }

    @Test
    void nthWriteFailsOnce() throws IOException {
        FaultStorage s = new FaultStorage(new MemoryStorage()).failAt(IoKind.WRITE, 3, Errno.EIO, true);
        write(s);
        s.writeZeroes(0, 4);
        assertThrows(InjectedFault.class, () -> s.setLength(8));
        write(s);
        assertEquals("refblock_alloc", StorageEvent.REFBLOCK_ALLOC.blkdebugName());
    }
}
