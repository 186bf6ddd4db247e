package io.github.qcowloom.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.BlockDevice;
import io.github.qcowloom.api.BlockStatus;
import io.github.qcowloom.api.OpenOptions;
import io.github.qcowloom.image.Qcow2Image;
import io.github.qcowloom.image.ZeroData;
import io.github.qcowloom.testing.Qemu;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * convert's reader asks block status first, as qemu-img convert does: it reads no byte of a range the source
 * reports as zeroes (zero or unallocated clusters, through the backing chain), still hands every chunk to the sink
 * with the right bytes, and marks the chunks it did not read at all.
 */
class ChunkCopyTest {
    private static final int CHUNK = 256 << 10;

    @TempDir
    Path dir;

    @BeforeEach
    void needQemu() {
        Qemu.assume();
    }

    /** A device that records which ranges were read. */
    private record CountingDevice(BlockDevice inner, List<long[]> reads) implements BlockDevice {
        @Override
        public long size() {
            return inner.size();
        }

        @Override
        public void read(long offset, ByteBuffer dst) throws IOException {
            reads.add(new long[] {offset, offset + dst.remaining()});
            inner.read(offset, dst);
        }

        @Override
        public BlockStatus blockStatus(long offset, long length) throws IOException {
            return inner.blockStatus(offset, length);
        }

        @Override
        public void write(long offset, ByteBuffer src) throws IOException {
            throw new AssertionError("the source is only read");
        }

        @Override
        public void discard(long offset, long length) throws IOException {
            throw new AssertionError("the source is only read");
        }

        @Override
        public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
            throw new AssertionError("the source is only read");
        }

        @Override
        public void flush() {
        }

        @Override
        public void resize(long newSize) {
            throw new AssertionError("the source is only read");
        }

        @Override
        public boolean readOnly() {
            return true;
        }

        @Override
        public void close() throws IOException {
            inner.close();
        }
    }

    @Test
    void readsOnlyWhatBlockStatusCallsData() throws IOException {
        Path base = dir.resolve("base.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", base.toString(), "4M");
        Qemu.io(base, "write -P 0x11 2M 512k", "write -z 3M 256k");
        Path src = dir.resolve("src.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", src.toString(), "5M");
        Qemu.io(src, "write -P 0x22 0 100k", "write -z 256k 512k", "write -c -P 0x33 1M 64k",
                "write -P 0x44 4M 64k", "write -z 2304k 64k", "write -P 0 4608k 64k");

        List<long[]> reads = Collections.synchronizedList(new ArrayList<>());
        Map<Long, Boolean> zeroChunks = new ConcurrentHashMap<>();
        byte[] copy;
        try (CountingDevice dev = new CountingDevice(Qcow2Image.open(src, OpenOptions.readOnlyDefaults()), reads)) {
            copy = new byte[(int) dev.size()];
            ChunkCopy.run(dev, new ChunkCopy.Settings(CHUNK, 8, false, true), (offset, chunk, zero) -> {
                chunk.get(0, copy, (int) offset, chunk.remaining());
                zeroChunks.put(offset, zero);
                return ChunkCopy.Write.NONE;
            }, n -> { });
        }
        assertArrayEquals(Qemu.toRaw(src, dir), copy, "every chunk's bytes");

        // What qemu-img map calls zero is never read, data or not (QEMU finds the tail of the cluster written first a
        // hole of the file, this small image looking preallocated); everything else is read exactly once.
        List<QemuMap.Extent> zeroes = new ArrayList<>();
        long dataBytes = 0;
        for (QemuMap.Extent e : QemuMap.of(src.toString()).extents()) {
            if (e.data() && !e.zero()) {
                dataBytes += e.length();
            } else {
                zeroes.add(e);
            }
        }
        long readBytes = 0;
        for (long[] r : reads) {
            readBytes += r[1] - r[0];
            for (QemuMap.Extent z : zeroes) {
                assertFalse(r[0] < z.start() + z.length() && z.start() < r[1],
                        "read [" + r[0] + ", " + r[1] + ") overlaps the zero extent " + z);
            }
        }
        assertEquals(dataBytes, readBytes, "bytes read");
        assertTrue(dataBytes > 0);
        // Chunks of 256k with no data anywhere in the chain: zero clusters (1, 2), unallocated in both images (3,
        // 5-7, 10, 11, 13-15, 17), zero in the backing file (12), past the backing file's end (19). Chunk 18 holds
        // data clusters of zeroes: read, and not known to be zeroes.
        Set<Long> expected = Set.of(1L, 2L, 3L, 5L, 6L, 7L, 10L, 11L, 12L, 13L, 14L, 15L, 17L, 19L);
        for (long chunk = 0; chunk < 20; chunk++) {
            assertEquals(expected.contains(chunk), zeroChunks.get(chunk * CHUNK), "chunk " + chunk + " is zeroes");
        }
    }

    /**
     * Where the sink keeps zeroes as holes, the pipeline hands it only what block status calls data, in pieces
     * that never cross a chunk boundary; in order (the default), the writes come in ascending guest order, with any
     * number of requests; out of order (-W) the bytes are still all there.
     */
    @Test
    void holesNeverReachTheSinkAndWritesComeInOrder() throws IOException {
        Path src = dir.resolve("holes.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", src.toString(), "6M");
        Qemu.io(src, "write -P 0x22 0 100k", "write -P 0x33 192k 900k", "write -z 1216k 64k",
                "write -P 0x44 1280k 1M", "write -P 0x55 4M 64k", "write -P 0x66 5M 1M");
        byte[] expected = Qemu.toRaw(src, dir);
        for (int requests : new int[] {1, 3, 16}) {
            for (boolean inOrder : new boolean[] {true, false}) {
                List<long[]> writes = Collections.synchronizedList(new ArrayList<>());
                byte[] copy = new byte[expected.length];
                try (Qcow2Image dev = Qcow2Image.open(src, OpenOptions.readOnlyDefaults())) {
                    ChunkCopy.run(dev, new ChunkCopy.Settings(CHUNK, requests, inOrder, false),
                            (offset, chunk, zero) -> {
                                assertFalse(zero, "a piece of zeroes reached the sink");
                                return () -> {
                                    chunk.get(0, copy, (int) offset, chunk.remaining());
                                    writes.add(new long[] {offset, offset + chunk.remaining()});
                                };
                            }, n -> { });
                }
                String what = requests + " requests, in order " + inOrder;
                assertArrayEquals(expected, copy, what);
                long bytes = 0;
                for (int i = 0; i < writes.size(); i++) {
                    long[] w = writes.get(i);
                    bytes += w[1] - w[0];
                    assertEquals(w[0] / CHUNK, (w[1] - 1) / CHUNK, what + ": piece crosses a chunk boundary");
                    if (inOrder && i > 0) {
                        assertTrue(writes.get(i - 1)[1] <= w[0], what + ": write out of guest order");
                    }
                }
                // 100k rounds up to 128k of data cluster: 128k + 900k (15 clusters) + 1M + 64k + 1M.
                assertEquals((128 + 960 + 1024 + 64 + 1024) << 10, bytes, what + ": bytes handed to the sink");
            }
        }
    }

    /**
     * -r counts what the sink writes, as qemu-img's throttle on the target's writes does: pieces passed over (zeroes
     * a new target keeps as holes) and pieces the sink writes nothing for are not counted. Recorded, not timed.
     */
    @Test
    void rateLimitCountsOnlyWhatIsWritten() throws IOException {
        Path src = dir.resolve("r.qcow2");
        Qemu.img("create", "-q", "-f", "qcow2", src.toString(), "16M");
        Qemu.io(src, "write -P 0x11 15M 1M", "write -P 0 2M 256k");
        List<Long> waited = Collections.synchronizedList(new ArrayList<>());
        RateLimit recording = new RateLimit(1) {
            @Override
            void await(long bytes) {
                waited.add(bytes);
            }
        };
        try (BlockDevice dev = Qcow2Image.open(src, OpenOptions.readOnlyDefaults())) {
            // As a fresh target's sink: zero ranges are passed over, and the piece of zero bytes at 2M writes nothing.
            ChunkCopy.run(dev, new ChunkCopy.Settings(CHUNK, 1, true, false, recording),
                    (offset, chunk, zero) -> ZeroData.isZero(chunk) ? ChunkCopy.Write.NONE : () -> { }, n -> { });
        }
        List<Long> expected = new ArrayList<>();
        for (long done = 0; done < 1 << 20; done += CHUNK) {
            expected.add(done); // the 1 MiB at 15M, a piece at a time, each waiting for the bytes before it
        }
        assertEquals(expected, waited);
    }
}
