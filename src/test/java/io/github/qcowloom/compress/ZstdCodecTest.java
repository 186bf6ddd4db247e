package io.github.qcowloom.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.github.luben.zstd.Zstd;
import io.github.qcowloom.api.CorruptImageException;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** zstd cases the shared properties do not reach: QEMU's frame-by-frame loop and lying frame headers. */
class ZstdCodecTest {
    private final ZstdCodec codec = ZstdCodec.INSTANCE;

    @Test
    void framesAreDecodedUntilTheClusterIsFull() throws CorruptImageException {
        byte[] data = ClusterData.compressible(new Random(1), 4096);
        byte[] input = concat(
                Zstd.compress(Arrays.copyOfRange(data, 0, 1000)),
                skippableFrame(100),
                Zstd.compress(Arrays.copyOfRange(data, 1000, 4096)),
                Zstd.compress(new byte[4096])); // beyond the cluster: the next cluster's bytes
        ByteBuffer dst = ByteBuffer.allocate(4096);
        codec.decompress(ByteBuffer.wrap(input), dst);
        assertArrayEquals(data, dst.array());
    }

    @Test
    void inputEndingBeforeFullOutputFails() {
        byte[] packed = Zstd.compress(new byte[4096]);
        var e = assertThrows(
                CorruptImageException.class,
                () -> codec.decompress(ByteBuffer.wrap(packed), ByteBuffer.allocate(8192)));
        assertTrue(e.getMessage().contains("ended after 4096 of 8192"), e.getMessage());
    }

    /** QEMU fails when a frame does not end with the cluster (its stream is then not fully flushed). */
    @Test
    void frameLargerThanTheClusterFails() {
        byte[] packed = Zstd.compress(new byte[1 << 20]);
        assertThrows(
                CorruptImageException.class,
                () -> codec.decompress(ByteBuffer.wrap(packed), ByteBuffer.allocate(4096)));
    }

    /** A header claiming 1 TiB of content must fail against the cluster size, not try to allocate it. */
    @Test
    void hugeClaimedContentSizeFails() {
        ByteBuffer frame = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN);
        frame.putInt(0xFD2FB528); // magic
        frame.put((byte) 0xE0); // 8-byte content size, single segment
        frame.putLong(1L << 40);
        frame.put(new byte[] {0x21, 0, 0}); // last block, raw, 4 bytes
        frame.put(new byte[] {1, 2, 3, 4});
        var e = assertThrows(
                CorruptImageException.class,
                () -> codec.decompress(frame.flip(), ByteBuffer.allocate(4096)));
        assertTrue(e.getMessage().contains("invalid zstd data"), e.getMessage());
    }

    @Test
    void contentShorterThanClaimedFails() {
        ByteBuffer frame = ByteBuffer.allocate(13).order(ByteOrder.LITTLE_ENDIAN);
        frame.putInt(0xFD2FB528);
        frame.put((byte) 0x20); // 1-byte content size, single segment
        frame.put((byte) 200);
        frame.put(new byte[] {0x21, 0, 0});
        frame.put(new byte[] {1, 2, 3, 4});
        assertThrows(
                CorruptImageException.class, () -> codec.decompress(frame.flip(), ByteBuffer.allocate(200)));
    }

    @Test
    void tinyInputsStayUncompressed() {
        assertNull(codec.compress(ByteBuffer.allocate(0)));
        assertNull(codec.compress(ByteBuffer.allocate(1)));
    }

    @Test
    void typeIsZstd() {
        assertEquals(1, codec.type());
        assertEquals(codec, ClusterCodec.forType(1));
        assertThrows(IllegalArgumentException.class, () -> ClusterCodec.forType(2));
    }

    private static byte[] skippableFrame(int payload) {
        ByteBuffer frame = ByteBuffer.allocate(8 + payload).order(ByteOrder.LITTLE_ENDIAN);
        return frame.putInt(0x184D2A50).putInt(payload).array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            out.writeBytes(part);
        }
        return out.toByteArray();
    }
}
