package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.api.OutOfRangeException;
import io.github.qcowloom.testing.Qemu;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Many virtual threads read one image at once, through a cache too small to hold it, and all see QEMU's bytes. */
class ConcurrentReadTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void manyThreadsReadWhatQemuWrote(boolean direct) throws Exception {
        Qemu.assume();
        Path image = dir.resolve("c.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", image.toString(), "32M");
        List<String> writes = new ArrayList<>();
        for (int mib = 0; mib < 32; mib += 2) {
            writes.add("write -P " + (mib + 1) + " " + mib + "M 1M");
        }
        Qemu.io(image, writes.toArray(String[]::new));
        byte[] expected = Qemu.toRaw(image, dir);
        // 8 KiB of L2 cache for 64 KiB of L2 tables: constant eviction while threads wait on each other's loads.
        OpenOptions options = OpenOptions.readOnlyDefaults().withL2CacheBytes(8192).withDirect(direct);
        try (Qcow2Image img = Qcow2Image.open(image, options);
                ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < 256; t++) {
                long seed = t;
                done.add(threads.submit(() -> {
                    SplittableRandom rnd = new SplittableRandom(seed);
                    for (int i = 0; i < 40; i++) {
                        int len = 1 + rnd.nextInt(70_000);
                        long off = rnd.nextLong(expected.length - len);
                        ByteBuffer buf = rnd.nextBoolean() ? ByteBuffer.allocate(len) : ByteBuffer.allocateDirect(len);
                        img.read(off, buf);
                        byte[] got = new byte[len];
                        buf.flip().get(got);
                        assertArrayEquals(Arrays.copyOfRange(expected, (int) off, (int) off + len), got,
                                "read of " + len + " at " + off);
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get();
            }
        }
    }

    @Test
    void readsOutsideTheDiskFailClearly() throws Exception {
        Path image = dir.resolve("r.qcow2");
        ImageCreator.create(image, io.github.qcowloom.api.CreateOptions.defaults(1 << 20));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readOnlyDefaults())) {
            assertThrows(OutOfRangeException.class, () -> img.read((1 << 20) - 10, ByteBuffer.allocate(11)));
            assertThrows(OutOfRangeException.class, () -> img.read(-1, ByteBuffer.allocate(1)));
            assertThrows(OutOfRangeException.class, () -> img.read(Long.MAX_VALUE, ByteBuffer.allocate(2)));
            img.read((1 << 20) - 10, ByteBuffer.allocate(10));
        }
    }
}
