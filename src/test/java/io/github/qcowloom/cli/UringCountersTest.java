package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.StorageBackend;
import io.github.qcowloom.storage.FileStorage;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The line bench prints about the io_uring queue, from two moments' counts. */
class UringCountersTest {
    @TempDir
    Path dir;

    /** The link into the Java 22+ layer: a request through io_uring shows in the counts. */
    @Test
    void countsTheRequestsOfThisProcess() throws Exception {
        try (FileStorage file = FileStorage.create(dir.resolve("f"), false, StorageBackend.IO_URING)) {
            assertEquals(StorageBackend.IO_URING, file.backend()); // as StorageBackendTest: io_uring runs here
            file.write(ByteBuffer.allocateDirect(4096), 0);
            UringCounters before = UringCounters.now();
            file.read(ByteBuffer.allocateDirect(4096), 0);
            UringCounters read = UringCounters.now().since(before);
            assertTrue(read.ringRequests() + read.directRequests() >= 1, read.toString());
        }
    }

    @Test
    void describesTheRequestsBetweenTwoMomentsWithMeansOverTheTimedOnes() {
        UringCounters before = new UringCounters(10, 5, 3, 1, 4, 1_000_000, 2_000_000);
        UringCounters after = new UringCounters(110, 6, 28, 9, 4 + 25, 1_000_000 + 25 * 480_000L,
                2_000_000 + 25 * 250_000L);
        assertEquals("io_uring: 100 of 101 requests through the ring, 4.0 per submitting call; prepared to "
                + "completed 480 us, completed to resumed 250 us (means)", after.since(before).describe());
    }

    @Test
    void saysWhenEveryRequestWasAloneAndNothingWhenNoneWasMade() {
        assertEquals("io_uring: 0 of 7 requests through the ring"
                + " (each made directly: alone in the queue, or from the page cache on a loop)",
                new UringCounters(0, 7, 0, 0, 0, 0, 0).describe());
        assertNull(new UringCounters(0, 0, 0, 0, 0, 0, 0).describe());
    }
}
