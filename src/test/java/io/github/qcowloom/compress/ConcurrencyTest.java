package io.github.qcowloom.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** Both codecs shared by thousands of virtual threads at once: no state leaks between calls. */
class ConcurrencyTest {
    @Test
    void sharedCodecsRoundTripOnManyVirtualThreads() throws Exception {
        List<Future<?>> results = new ArrayList<>();
        try (ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int task = 0; task < 2000; task++) {
                long seed = task;
                results.add(executor.submit(() -> {
                    Random random = new Random(seed);
                    ClusterCodec codec = ClusterCodec.forType((int) (seed & 1));
                    byte[] data = ClusterData.compressible(random, 1 << (9 + random.nextInt(8)));
                    byte[] packed = codec.compress(ByteBuffer.wrap(data));
                    ByteBuffer dst = ByteBuffer.allocate(data.length);
                    codec.decompress(ByteBuffer.wrap(packed), dst);
                    assertArrayEquals(data, dst.array(), "task " + seed);
                    return null;
                }));
            }
        }
        for (Future<?> result : results) {
            result.get();
        }
    }
}
