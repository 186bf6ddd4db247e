package io.github.qcowloom.simulation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.ImageCreator;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.storage.MemoryStorage;
import io.github.qcowloom.storage.Storage;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's explorer example, as written there (keep the two in step). */
class ReadmeExampleTest {
    @Test
    void theReadmeExampleRunsAndPasses(@TempDir Path dir) throws Exception {
        Path imagePath = dir.resolve("a.qcow2");
        ImageCreator.create(imagePath, CreateOptions.defaults(1 << 20).withClusterSize(4096));
        // From the README:
        byte[] fresh = Files.readAllBytes(imagePath);                 // e.g. made by ImageCreator.create
        Simulation.Exploration e = Simulation.explore(0, 1000, 1_000_000, sim -> {
            SectorHistory history = new SectorHistory(false);        // the oracle: an atomic register per sector
            Storage disk = new SimStorage(new MemoryStorage(fresh), sim); // yields before and after every I/O
            OpenOptions opts = OpenOptions.readWriteDefaults().withTicker(sim).withL2CacheBytes(4096); // tiny cache
            try (Qcow2Image img = Qcow2Image.open(disk, null, opts)) {
                Thread w = sim.start("writer", () -> {
                    long t0 = history.tick();
                    int id = history.newId();
                    ByteBuffer b = ByteBuffer.allocate(4096);
                    SectorHistory.fill(b, 0, id);
                    img.write(0, b.flip());                          // what a thread throws fails the run
                    history.wrote(t0, history.tick(), 0, 8, id, "write");
                });
                Thread r = sim.start("reader", () -> {
                    long t0 = history.tick();
                    ByteBuffer b = ByteBuffer.allocate(4096);
                    img.read(0, b);
                    history.read(t0, history.tick(), 0, b.flip(), "read");
                });
                w.join();
                r.join();
            }
            if (!history.violations().isEmpty()) throw new AssertionError(history.violations());
        });
        System.out.println(e.distinct() + " interleavings; " + (e.failed() == null ? "all passed"
                : "seed " + e.failed().seed() + " fails: " + e.failed().failure()));
        // End of the README's code.
        assertNull(e.failed());
        assertEquals(1000, e.runs());
    }
}
