package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A partial write skips writing the zeroes around its data only in a cluster that was never written. A freed
 * metadata cluster (here the L1 table a first growth wrote, freed by a second) holds old bytes, so a write that
 * reuses it must still zero the rest of the cluster.
 */
class FreshClusterTest {
    @TempDir
    Path dir;

    @Test
    void reusedMetadataClusterIsZeroedAroundAPartialWrite() throws Exception {
        Path image = dir.resolve("f.qcow2");
        ImageCreator.create(image, CreateOptions.defaults(1 << 20));
        try (Qcow2Image img = Qcow2Image.open(image, OpenOptions.readWriteDefaults().withPool(false))) {
            byte[] data = new byte[65536];
            Arrays.fill(data, (byte) 0x5a);
            img.write(0, ByteBuffer.wrap(data)); // an L2 table, so the L1 copies below hold a non-zero entry
            img.resize(1L << 40); // L1 grows into a new cluster past the end of the file
            img.resize(100L << 40); // ... and again: the first grown table is freed
            img.flush(); // the free becomes durable, so the cluster may be reused
            img.write((1L << 30) + 512, ByteBuffer.wrap(new byte[] {1, 2, 3}));
            byte[] cluster = new byte[65536];
            img.read(1L << 30, ByteBuffer.wrap(cluster));
            byte[] expected = new byte[65536];
            expected[512] = 1;
            expected[513] = 2;
            expected[514] = 3;
            assertArrayEquals(expected, cluster);
        }
    }
}
