package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.storage.AllocatedBytes;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** "disk size": statx (the Java 22+ layer) against coreutils' stat, on a sparse and on a written file. */
class DiskUsageTest {
    @TempDir
    Path dir;

    @Test
    void statxCountsTheBlocksStatDoes() throws IOException {
        assertNull(AllocatedBytes.STATX.missing(), "the tests run with the Java 22+ layer");
        Path sparse = dir.resolve("sparse");
        try (RandomAccessFile f = new RandomAccessFile(sparse.toFile(), "rw")) {
            f.setLength(1L << 30);
            f.seek(512L << 20);
            f.write(nonZero(3 * 4096)); // not zeroes: a compressing file system would store none
        }
        Path dense = dir.resolve("dense");
        Files.write(dense, nonZero(5 << 20));
        Path link = Files.createSymbolicLink(dir.resolve("link"), dense); // followed: the image's own blocks
        for (Path p : new Path[] {sparse, dense, dir.resolve("empty"), link}) {
            if (!Files.exists(p)) {
                Files.createFile(p);
            }
            OptionalLong statx = DiskUsage.of(p);
            OptionalLong stat = DiskUsage.ofStatProcess(p);
            assertTrue(stat.isPresent(), "coreutils' stat answers for " + p);
            assertEquals(stat, statx, p.toString());
        }
        assertTrue(DiskUsage.of(sparse).getAsLong() < 1L << 20, "a 1 GiB file with 12 KiB written is not dense");
        assertTrue(DiskUsage.of(dense).getAsLong() >= 5L << 20, "a written file counts its bytes");
        assertEquals(DiskUsage.of(dense), DiskUsage.of(link));
    }

    private static byte[] nonZero(int n) {
        byte[] b = new byte[n];
        new Random(n).nextBytes(b);
        return b;
    }

    @Test
    void aMissingFileHasNoDiskSize() {
        assertEquals(OptionalLong.empty(), DiskUsage.of(dir.resolve("absent")));
    }
}
