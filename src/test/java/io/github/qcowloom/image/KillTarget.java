package io.github.qcowloom.image;

import io.github.qcowloom.api.OpenOptions;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The child process of {@link KillTest}: 16 virtual threads write random clusters into the image with the pool on,
 * flushing now and then, until the parent kills the process. Prints "ready" once the pool has been used.
 */
public final class KillTarget {
    private KillTarget() {
    }

    public static void main(String[] args) throws Exception {
        Qcow2Image img = Qcow2Image.open(Path.of(args[0]), OpenOptions.readWriteDefaults());
        try (ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int t = 0; t < 16; t++) {
                long seed = t;
                threads.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(seed);
                    byte[] data = new byte[4096];
                    for (long i = 0; ; i++) {
                        Arrays.fill(data, (byte) (seed + 1));
                        long off = rnd.nextLong(img.size() / 4096) * 4096;
                        img.write(off, ByteBuffer.wrap(data));
                        if (i % 97 == 0) {
                            img.flush();
                        }
                        if (seed == 0 && i == 2000) {
                            System.out.println("ready");
                            System.out.flush();
                        }
                    }
                });
            }
        }
    }
}
