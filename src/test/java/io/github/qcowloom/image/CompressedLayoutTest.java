package io.github.qcowloom.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.github.luben.zstd.Zstd;
import io.github.qcowloom.api.CreateOptions;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.format.CompressedDescriptor;
import io.github.qcowloom.format.L2Entry;
import io.github.qcowloom.testing.MixedData;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Our compressed-cluster allocation against QEMU's qcow2_alloc_bytes: given the very streams qemu-img convert -c
 * produced, written in the same (guest) order, our image must have the same L2 descriptors, the same refcounts and
 * the same file length. Our own codecs produce other streams (zlib) or other versions' (zstd), so this is the test
 * that pins the packing itself.
 */
class CompressedLayoutTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    @ParameterizedTest(name = "{0}, {1}-byte clusters")
    @CsvSource({"zlib, 512", "zlib, 4096", "zlib, 65536", "zlib, 2097152",
        "zstd, 512", "zstd, 4096", "zstd, 65536", "zstd, 2097152"})
    void packsQemuStreamsExactlyWhereQemuImgConvertPutsThem(String type, int clusterSize) throws IOException {
        int size = Math.max(6 * clusterSize, 2 << 20) + 1536;
        byte[] raw = MixedData.generate(clusterSize, clusterSize, size);
        Path rawFile = dir.resolve("src.raw");
        Files.write(rawFile, raw);
        Path theirs = dir.resolve("theirs.qcow2");
        Qemu.img("convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o",
                "cluster_size=" + clusterSize + ",compression_type=" + type, rawFile.toString(), theirs.toString());
        byte[] theirFile = Files.readAllBytes(theirs);

        Path ours = dir.resolve("ours.qcow2");
        ImageCreator.create(ours, CreateOptions.defaults(size).withClusterSize(clusterSize).withCompressionType(type));
        int compressed = 0;
        try (OnDiskImage q = OnDiskImage.open(theirs);
                Qcow2Image img = Qcow2Image.open(ours, OpenOptions.readWriteDefaults().withPool(false))) {
            int bits = img.header().clusterBits();
            for (long c = 0; c * clusterSize < size; c++) {
                long entry = q.l2Entry(c);
                int offset = (int) (c * clusterSize);
                ByteBuffer data = ByteBuffer.wrap(raw, offset, Math.min(clusterSize, size - offset)).slice();
                switch (L2Entry.type(entry, false, false)) {
                    case COMPRESSED -> {
                        CompressedDescriptor d = CompressedDescriptor.decode(entry, bits);
                        byte[] stream = exactStream(theirFile, d, clusterSize, img.header().compressionType());
                        img.writeCompressed(new CompressedCluster(offset, bits, img.header().compressionType(), data,
                                stream));
                        compressed++;
                    }
                    case NORMAL -> img.write(offset, data); // QEMU's fallback for a cluster that did not shrink
                    case UNALLOCATED -> assertTrue(Arrays.equals(new byte[data.remaining()], 0, data.remaining(),
                            raw, offset, offset + data.remaining()), "qemu-img skips only zero clusters");
                    default -> throw new AssertionError("unexpected entry " + Long.toHexString(entry));
                }
            }
            img.padFileToSector();
        }
        assertTrue(compressed > 2, "the data has compressible clusters: " + compressed);

        try (OnDiskImage q = OnDiskImage.open(theirs); OnDiskImage o = OnDiskImage.open(ours)) {
            List<Long> expected = q.l2Entries();
            List<Long> actual = o.l2Entries();
            for (int c = 0; c < expected.size(); c++) {
                assertEquals(Long.toHexString(expected.get(c)), Long.toHexString(actual.get(c)),
                        "L2 entry of guest cluster " + c);
            }
            assertEquals(q.fileSize(), o.fileSize(), "file length");
            for (long h = 0; h <= q.fileSize() / clusterSize; h++) {
                assertEquals(q.refcount(h), o.refcount(h), "refcount of host cluster " + h);
            }
            assertTrue(o.compare().clean(), o.compare().messages().toString());
        }
        Qemu.img("check", ours.toString());
        assertTrue(Qemu.img("compare", "-f", "raw", "-F", "qcow2", rawFile.toString(), ours.toString())
                .contains("Images are identical"));
    }

    /** The exact bytes of the stream a descriptor points to (the descriptor itself knows only sectors). */
    private static byte[] exactStream(byte[] file, CompressedDescriptor d, int clusterSize, int compressionType) {
        int start = Math.toIntExact(d.hostOffset());
        int available = Math.min(d.length(), file.length - start);
        int length = compressionType == 0 ? zlibStreamLength(file, start, available, clusterSize)
                : Math.toIntExact(Zstd.findFrameCompressedSize(file, start, available));
        return Arrays.copyOfRange(file, start, start + length);
    }

    private static int zlibStreamLength(byte[] file, int start, int available, int clusterSize) {
        Inflater inflater = new Inflater(true);
        try {
            inflater.setInput(file, start, available);
            byte[] out = new byte[clusterSize + 1];
            int n = 0;
            while (!inflater.finished()) {
                int k = inflater.inflate(out, n, out.length - n);
                if (k == 0 && inflater.needsInput()) {
                    throw new AssertionError("zlib stream at " + start + " runs past its descriptor");
                }
                n += k;
            }
            assertEquals(clusterSize, n, "a compressed cluster inflates to one cluster");
            return (int) inflater.getBytesRead();
        } catch (DataFormatException e) {
            throw new AssertionError(e);
        } finally {
            inflater.end();
        }
    }
}
