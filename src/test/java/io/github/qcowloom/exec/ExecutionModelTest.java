package io.github.qcowloom.exec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.StorageBackend;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Parsing the models, resolving a profile's {@code auto}, and where {@code loop:N}'s threads run. */
class ExecutionModelTest {
    @Test
    void parsesEveryModelAndRefusesTheRest() {
        assertEquals(ExecutionModel.VIRTUAL, ExecutionModel.parse("virtual"));
        assertEquals(new ExecutionModel(64, 0), ExecutionModel.parse("pool:64"));
        assertEquals(new ExecutionModel(0, 2), ExecutionModel.parse("loop:2"));
        assertEquals("loop:2", ExecutionModel.parse("loop:2").toString());
        for (String bad : new String[] {"loop:0", "loop:65", "loop:01", "loop:999999999999", "pool:0", "pool:4097",
            "pool:0008", "auto", "loops:1", ""}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ExecutionModel.parse(bad));
            assertTrue(e.getMessage().contains("'loop:N'"), e.getMessage());
        }
    }

    @Test
    void autoIsOneLoopWithODirectThroughIoUringAndVirtualOtherwise() {
        ExecutionModel oneLoop = new ExecutionModel(0, 1);
        assertEquals(oneLoop, ExecutionModel.resolve("auto", true, StorageBackend.AUTO));
        assertEquals(oneLoop, ExecutionModel.resolve("auto", true, StorageBackend.IO_URING));
        assertEquals(ExecutionModel.VIRTUAL, ExecutionModel.resolve("auto", true, StorageBackend.FILECHANNEL));
        assertEquals(ExecutionModel.VIRTUAL, ExecutionModel.resolve("auto", false, StorageBackend.AUTO));
        assertEquals(ExecutionModel.VIRTUAL, ExecutionModel.resolve("auto", false, StorageBackend.IO_URING));
        assertEquals(new ExecutionModel(8, 0), ExecutionModel.resolve("pool:8", true, StorageBackend.AUTO));
    }

    @Test
    void aServersAutoIsOneLoopInBothModesUnlessTheFilesGoThroughFileChannel() {
        ExecutionModel oneLoop = new ExecutionModel(0, 1);
        assertEquals(oneLoop, ExecutionModel.resolveForServer("auto", StorageBackend.AUTO));
        assertEquals(oneLoop, ExecutionModel.resolveForServer("auto", StorageBackend.IO_URING));
        assertEquals(ExecutionModel.VIRTUAL, ExecutionModel.resolveForServer("auto", StorageBackend.FILECHANNEL));
        assertEquals(new ExecutionModel(0, 2), ExecutionModel.resolveForServer("loop:2", StorageBackend.FILECHANNEL));
        assertEquals(ExecutionModel.VIRTUAL, ExecutionModel.resolveForServer("virtual", StorageBackend.AUTO));
    }

    @Test
    void theRecordRefusesWhatParseRefuses() {
        assertThrows(IllegalArgumentException.class, () -> new ExecutionModel(0, 65));
        assertThrows(IllegalArgumentException.class, () -> new ExecutionModel(4097, 0));
        assertThrows(IllegalArgumentException.class, () -> new ExecutionModel(2, 2));
    }

    /** The test JVM opens java.lang and runs Java 24+: loop:N's threads are virtual threads on the loops. */
    @Test
    void loopThreadsAreVirtualThreadsOnTheLoops() throws Exception {
        ExecutionModel model = ExecutionModel.parse("loop:1");
        assertEquals(model, model.effective());
        CompletableFuture<String> where = new CompletableFuture<>();
        Thread t = model.requestThreads("probe").newThread(() -> where.complete(Thread.currentThread().isVirtual()
                + " " + Thread.currentThread().toString()));
        t.start();
        String seen = where.get(10, TimeUnit.SECONDS);
        assertTrue(seen.startsWith("true ") && seen.contains("qcow2-loom-loop-0"), seen);
    }
}
