package io.github.qcowloom.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.LongStream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Our codecs against qemu-img: we read the clusters it compresses, and it reads the clusters we compress. */
class QemuInteropTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}, {1}-byte clusters")
    @CsvSource({"zlib, 4096", "zlib, 65536", "zstd, 4096", "zstd, 65536"})
    void weReadQemuClusters(String type, int clusterSize) throws Exception {
        byte[] raw = rawImage(clusterSize);
        byte[] image = qemuCompressed(raw, type, clusterSize);
        CompressedClusters found = CompressedClusters.of(image);
        ClusterCodec codec = ClusterCodec.forType(found.compressionType());
        assertEquals(type, codec instanceof ZlibCodec ? "zlib" : "zstd");
        assertEquals(expectedCompressed(raw, clusterSize), found.clusters().stream()
                .map(CompressedClusters.Cluster::guestIndex)
                .toList());

        for (CompressedClusters.Cluster cluster : found.clusters()) {
            // The descriptor's range as QEMU reads it: sector-rounded, running into the next cluster's bytes.
            int offset = Math.toIntExact(cluster.hostOffset());
            ByteBuffer src = ByteBuffer.wrap(image, offset, Math.min(cluster.size(), image.length - offset));
            ByteBuffer dst = ByteBuffer.allocate(clusterSize);
            codec.decompress(src, dst);
            assertArrayEquals(guestCluster(raw, cluster.guestIndex(), clusterSize), dst.array(),
                    "guest cluster " + cluster.guestIndex());
        }
    }

    /**
     * Replaces every compressed cluster of a qemu-img image with our own stream, packed back to back at the
     * end of the file as QEMU packs them, then has qemu-img read the image back.
     */
    @ParameterizedTest(name = "{0}, {1}-byte clusters")
    @CsvSource({"zlib, 4096", "zlib, 65536", "zstd, 4096", "zstd, 65536"})
    void qemuReadsOurClusters(String type, int clusterSize) throws Exception {
        byte[] raw = rawImage(clusterSize);
        byte[] image = qemuCompressed(raw, type, clusterSize);
        CompressedClusters found = CompressedClusters.of(image);
        ClusterCodec codec = ClusterCodec.forType(found.compressionType());

        ByteBuffer edited = ByteBuffer.wrap(image);
        ByteArrayOutputStream appended = new ByteArrayOutputStream();
        for (CompressedClusters.Cluster cluster : found.clusters()) {
            byte[] packed = codec.compress(ByteBuffer.wrap(guestCluster(raw, cluster.guestIndex(), clusterSize)));
            assertNotNull(packed);
            long offset = image.length + appended.size();
            appended.writeBytes(packed);
            edited.putLong(cluster.l2EntryPosition(), found.descriptor(offset, packed.length));
        }
        appended.writeBytes(new byte[511 - (image.length + appended.size() + 511) % 512]);
        Path ours = dir.resolve("ours.qcow2");
        Files.write(ours, image);
        Files.write(ours, appended.toByteArray(), StandardOpenOption.APPEND);

        Path back = dir.resolve("back.raw");
        HostTools.run(qemuImg(), "convert", "-f", "qcow2", "-O", "raw", ours.toString(), back.toString());
        assertArrayEquals(raw, Files.readAllBytes(back));
    }

    private static String qemuImg() {
        return HostTools.require("qemu-img", "check compressed clusters against QEMU").toString();
    }

    private byte[] qemuCompressed(byte[] raw, String type, int clusterSize)
            throws IOException, InterruptedException {
        String qemuImg = qemuImg();
        Path rawFile = dir.resolve("guest.raw");
        Path image = dir.resolve(type + "-" + clusterSize + ".qcow2");
        Files.write(rawFile, raw);
        HostTools.run(qemuImg, "convert", "-c", "-f", "raw", "-O", "qcow2",
                "-o", "compression_type=" + type + ",cluster_size=" + clusterSize,
                rawFile.toString(), image.toString());
        return Files.readAllBytes(image);
    }

    /** Compressible clusters, with every fourth one zero (left unallocated) and every fourth noise (stored plain). */
    private static byte[] rawImage(int clusterSize) {
        int clusters = clusterSize == 4096 ? 64 : 16;
        byte[] raw = new byte[clusters * clusterSize];
        for (int i = 0; i < clusters; i++) {
            Random random = new Random(i);
            byte[] cluster = switch (i % 4) {
                case 1 -> new byte[clusterSize];
                case 3 -> ClusterData.random(random, clusterSize);
                default -> ClusterData.compressible(random, clusterSize);
            };
            System.arraycopy(cluster, 0, raw, i * clusterSize, clusterSize);
        }
        return raw;
    }

    private static List<Long> expectedCompressed(byte[] raw, int clusterSize) {
        return LongStream.range(0, raw.length / clusterSize)
                .filter(i -> i % 4 == 0 || i % 4 == 2)
                .boxed()
                .toList();
    }

    private static byte[] guestCluster(byte[] raw, long index, int clusterSize) {
        int start = Math.toIntExact(index * clusterSize);
        return Arrays.copyOfRange(raw, start, start + clusterSize);
    }
}
