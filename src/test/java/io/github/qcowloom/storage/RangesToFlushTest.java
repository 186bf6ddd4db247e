package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Ranges merge where they overlap or touch, and each run is one ranged sync. */
class RangesToFlushTest {
    private static List<String> syncs(RangesToFlush ranges) throws IOException {
        List<String> made = new ArrayList<>();
        ranges.flush(new ForwardingStorage(new MemoryStorage()) {
            @Override
            public void flushRange(long position, long length) {
                made.add(position + "+" + length);
            }
        });
        return made;
    }

    @Test
    void overlappingAndTouchingRangesBecomeOneRun() throws IOException {
        RangesToFlush r = new RangesToFlush().add(100, 10).add(0, 8).add(8, 4).add(105, 20).add(50, 0).add(90, 10);
        assertEquals(List.of("0+12", "90+35"), syncs(r));
        assertEquals(2, r.runs());
    }

    @Test
    void aRangeSpanningSeveralRunsSwallowsThem() throws IOException {
        RangesToFlush r = new RangesToFlush().add(0, 4).add(10, 4).add(20, 4).add(2, 20);
        assertEquals(List.of("0+24"), syncs(r));
    }
}
