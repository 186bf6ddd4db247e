package io.github.qcowloom.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class BlockLocksTest {
    @Test
    void overlappingAndWrappingRangesNeitherDeadlockNorOverlap() {
        int stripes = 16;
        BlockLocks locks = new BlockLocks(stripes);
        AtomicIntegerArray holders = new AtomicIntegerArray(stripes);
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            try (ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor()) {
                for (int t = 0; t < 32; t++) {
                    long seed = t;
                    executor.submit(() -> {
                        SplittableRandom random = new SplittableRandom(seed);
                        for (int i = 0; i < 2_000; i++) {
                            long first = random.nextLong(0, 100);
                            long end = first + random.nextLong(1, 24); // some ranges exceed the stripe count
                            locks.lock(first, end);
                            try {
                                for (long b = first; b < Math.min(end, first + stripes); b++) {
                                    assertEquals(1, holders.incrementAndGet((int) (b % stripes)), "stripe shared");
                                }
                                Thread.yield();
                                for (long b = first; b < Math.min(end, first + stripes); b++) {
                                    holders.decrementAndGet((int) (b % stripes));
                                }
                            } finally {
                                locks.unlock(first, end);
                            }
                        }
                        return null;
                    });
                }
            }
        });
        for (int i = 0; i < stripes; i++) {
            assertEquals(0, holders.get(i));
        }
    }

    @Test
    void stripeCountMustBeAPowerOfTwo() {
        assertThrows(IllegalArgumentException.class, () -> new BlockLocks(12));
        new BlockLocks(1);
    }
}
