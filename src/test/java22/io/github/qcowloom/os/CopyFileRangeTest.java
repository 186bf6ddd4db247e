package io.github.qcowloom.os;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
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

/** The kernel copies ranges of several files into one target, from many threads at once, and says when it cannot. */
class CopyFileRangeTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path dir;

    private byte[] file(Path path, long seed, int size) throws IOException {
        byte[] bytes = new byte[size];
        new SplittableRandom(seed).nextBytes(bytes);
        Files.write(path, bytes);
        return bytes;
    }

    @Test
    void copiesRangesOfSeveralSourcesFromManyThreads() throws Exception {
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        byte[] bytesA = file(a, 1, 8 * MIB);
        byte[] bytesB = file(b, 2, 8 * MIB);
        Path target = dir.resolve("t");
        Files.write(target, new byte[16 * MIB]);
        byte[] expected = new byte[16 * MIB];
        try (CopyFileRange copy = CopyFileRange.into(target);
                ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<Boolean>> copies = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                Path source = i % 2 == 0 ? a : b;
                byte[] from = i % 2 == 0 ? bytesA : bytesB;
                long sourceOffset = (i * 3L % 7) * MIB + 4096; // unaligned to the target's offset
                long targetOffset = (long) i * MIB;
                System.arraycopy(from, (int) sourceOffset, expected, (int) targetOffset, MIB);
                copies.add(pool.submit(() -> copy.copy(source, sourceOffset, targetOffset, MIB)));
            }
            for (Future<Boolean> f : copies) {
                assertTrue(f.get());
            }
        }
        assertArrayEquals(expected, Files.readAllBytes(target));
    }

    @Test
    void refusesWhatItCannotCopy() throws IOException {
        Path a = dir.resolve("a");
        byte[] bytes = file(a, 3, MIB);
        Path target = dir.resolve("t");
        Files.write(target, new byte[2 * MIB]);
        try (CopyFileRange copy = CopyFileRange.into(target)) {
            assertFalse(copy.copy(a, MIB / 2, 0, MIB), "the source ends before the range does");
            assertFalse(copy.copy(dir.resolve("missing"), 0, 0, 4096), "a source that cannot be opened");
            assertFalse(copy.copy(dir, 0, 0, 4096), "a folder");
            assertTrue(copy.copy(a, 0, MIB, MIB), "the copier goes on after refusals");
        }
        assertArrayEquals(bytes, Arrays.copyOfRange(Files.readAllBytes(target), MIB, 2 * MIB));
    }
}
