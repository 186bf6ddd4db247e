package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** convert -c's in-order writes: turns come in guest order, and one writer's failure stops all the others. */
class WriteTurnsTest {
    @Test
    void turnsComeInGuestOrder() throws Exception {
        WriteTurns turns = new WriteTurns();
        List<Long> order = Collections.synchronizedList(new ArrayList<>());
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (long chunk = 9; chunk >= 0; chunk--) {
                long offset = chunk * 100;
                done.add(pool.submit(() -> {
                    turns.await(offset);
                    order.add(offset);
                    turns.pass(offset + 100);
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        }
        assertEquals(List.of(0L, 100L, 200L, 300L, 400L, 500L, 600L, 700L, 800L, 900L), order);
    }

    @Test
    void aFailureReachesEveryWaiter() throws Exception {
        WriteTurns turns = new WriteTurns();
        IOException cause = new IOException("disk full");
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            Future<?> waiting = pool.submit(() -> {
                turns.await(300);
                return null;
            });
            turns.abort(cause);
            ExecutionException e = assertThrows(ExecutionException.class, waiting::get);
            assertSame(cause, e.getCause());
            assertSame(cause, assertThrows(IOException.class, () -> turns.await(0)));
        }
    }
}
