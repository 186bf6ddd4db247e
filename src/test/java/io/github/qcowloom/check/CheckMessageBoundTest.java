package io.github.qcowloom.check;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.alloc.ReferenceCount;
import io.github.qcowloom.storage.MemoryStorage;
import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A 125 KiB image the fuzzer made: 65534 snapshots over one broken tree, where qemu-img's walk prints millions of
 * error lines. Ours keeps the first {@link ReferenceCount#MAX_PROBLEM_LINES} and says how many more there were.
 */
class CheckMessageBoundTest {
    @Test
    void theWalkKeepsItsFirstLinesAndCountsTheRest() throws IOException {
        byte[] image;
        try (InputStream in = getClass().getResourceAsStream(
                "/io/github/qcowloom/fuzz/ImageFuzzTestInputs/repairAll/snapshots-sharing-one-broken-tree")) {
            image = in.readAllBytes();
        }
        // -r all: a plain check refuses the table of more than 65536 snapshots before any walk.
        RepairOutcome r = ImageChecker.repair(new MemoryStorage(image), "many.qcow2", RepairMode.ALL);
        List<String> notShown = r.messages().stream().filter(m -> m.contains("more errors like these")).toList();
        assertEquals(1, notShown.size(), "one line counts the lines not kept");
        // The snapshot table's own 65534 repair lines, the walks' kept lines and the per-cluster ones: about
        // 90 000, not 17 million.
        assertTrue(r.messages().size() < 100_000, "lines: " + r.messages().size());
        long notKept = Long.parseLong(notShown.get(0).replaceAll("\\D+", " ").trim().split(" ")[0]);
        assertTrue(notKept > 1_000_000, notShown.get(0));
    }
}
