package io.github.qcowloom.compress;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.qcowloom.api.CorruptImageException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;
import java.util.zip.Deflater;
import org.junit.jupiter.api.Test;

/** zlib cases the shared properties do not reach: QEMU's acceptance rules and foreign encoders. */
class ZlibCodecTest {
    private final ZlibCodec codec = ZlibCodec.INSTANCE;

    @Test
    void fullOutputBeforeStreamEndIsAccepted() throws CorruptImageException {
        byte[] data = ClusterData.compressible(new Random(1), 8192);
        byte[] packed = codec.compress(ByteBuffer.wrap(data));
        ByteBuffer dst = ByteBuffer.allocate(4096);
        codec.decompress(ByteBuffer.wrap(packed), dst);
        assertArrayEquals(Arrays.copyOf(data, 4096), dst.array());
    }

    @Test
    void streamEndingBeforeFullOutputFails() {
        byte[] packed = codec.compress(ByteBuffer.wrap(new byte[4096]));
        var e = assertThrows(
                CorruptImageException.class,
                () -> codec.decompress(ByteBuffer.wrap(packed), ByteBuffer.allocate(8192)));
        assertTrue(e.getMessage().contains("ended after 4096 of 8192"), e.getMessage());
    }

    @Test
    void invalidBlockTypeFails() {
        // First byte 0b111: final block of the reserved type 3.
        var e = assertThrows(
                CorruptImageException.class,
                () -> codec.decompress(ByteBuffer.wrap(new byte[] {7, 0, 0, 0}), ByteBuffer.allocate(512)));
        assertTrue(e.getMessage().contains("invalid zlib stream"), e.getMessage());
    }

    @Test
    void emptyInputFails() {
        assertThrows(
                CorruptImageException.class,
                () -> codec.decompress(ByteBuffer.allocate(0), ByteBuffer.allocate(512)));
    }

    /** Other writers use a 32 KiB window; QEMU still reads those (it inflates a cluster in one call), so do we. */
    @Test
    void readsStreamsWithLargerWindows() throws CorruptImageException {
        byte[] data = ClusterData.periodic(new Random(2), 65536, 5000);
        Deflater deflater = new Deflater(Deflater.BEST_COMPRESSION, true);
        deflater.setInput(data);
        deflater.finish();
        byte[] packed = new byte[data.length];
        int length = deflater.deflate(packed);
        deflater.end();
        ByteBuffer dst = ByteBuffer.allocate(data.length);
        codec.decompress(ByteBuffer.wrap(packed, 0, length), dst);
        assertArrayEquals(data, dst.array());
    }

    /** A random 4 KiB block repeated: matches are 4 KiB back, but each flushed 4 KiB chunk is noise. */
    @Test
    void chunkwiseNoiseStaysUncompressed() {
        byte[] block = ClusterData.random(new Random(3), 4096);
        byte[] data = new byte[65536];
        for (int i = 0; i < data.length; i += block.length) {
            System.arraycopy(block, 0, data, i, block.length);
        }
        assertNull(codec.compress(ByteBuffer.wrap(data)));
    }

    @Test
    void tinyInputsStayUncompressed() {
        assertNull(codec.compress(ByteBuffer.allocate(0)));
        assertNull(codec.compress(ByteBuffer.allocate(1)));
    }

    @Test
    void typeIsZlib() {
        assertEquals(0, codec.type());
        assertEquals(codec, ClusterCodec.forType(0));
    }
}
