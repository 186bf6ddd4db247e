package io.github.qcowloom.nbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.EOFException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

// A stream that stops advancing spins: only a timeout on its own thread can end it.
@Timeout(value = 30, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
class RequestStreamTest {
    /** A channel that hands out its bytes in pieces of random size, as a socket does, and counts its reads. */
    private static final class Trickle implements ReadableByteChannel {
        private final ByteBuffer bytes;
        private final Random random;
        private final int largestPiece;
        int reads;

        Trickle(byte[] bytes, long seed, int largestPiece) {
            this.bytes = ByteBuffer.wrap(bytes);
            this.random = new Random(seed);
            this.largestPiece = largestPiece;
        }

        @Override
        public int read(ByteBuffer dst) {
            reads++;
            if (!bytes.hasRemaining()) {
                return -1;
            }
            int n = Math.min(Math.min(dst.remaining(), bytes.remaining()), 1 + random.nextInt(largestPiece));
            dst.put(bytes.slice(bytes.position(), n));
            bytes.position(bytes.position() + n);
            return n;
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
        }
    }

    /** Headers of 28 bytes, each followed by a payload of 0 to 200 000 bytes, its length in the header's last int. */
    @Test
    void headersAndPayloadsComeOutWhole() throws Exception {
        for (long seed = 0; seed < 40; seed++) {
            Random random = new Random(seed);
            List<byte[]> sent = new ArrayList<>();
            ByteBuffer wire = ByteBuffer.allocate(4 << 20);
            for (int i = 0; i < 30; i++) {
                byte[] header = new byte[28];
                random.nextBytes(header);
                int length = random.nextInt(4) == 0 ? random.nextInt(200_000) : 0;
                ByteBuffer.wrap(header).putInt(24, length);
                byte[] payload = new byte[length];
                random.nextBytes(payload);
                wire.put(header).put(payload);
                sent.add(header);
                sent.add(payload);
            }
            byte[] bytes = new byte[wire.flip().remaining()];
            wire.get(bytes);
            Trickle ch = new Trickle(bytes, seed, seed % 2 == 0 ? 40 : RequestStream.SIZE);
            RequestStream in = new RequestStream(ch, new PayloadBuffers());
            for (int i = 0; i < sent.size(); i += 2) {
                ByteBuffer header = in.next(28);
                byte[] got = new byte[28];
                header.get(got);
                assertArrayEquals(sent.get(i), got, "seed " + seed + ", header " + i / 2);
                ByteBuffer payload = ByteBuffer.allocateDirect(header.getInt(24));
                in.readFully(payload);
                assertEquals(payload.capacity(), payload.position());
                byte[] data = new byte[payload.capacity()];
                payload.flip().get(data);
                assertArrayEquals(sent.get(i + 1), data, "seed " + seed + ", payload " + i / 2);
            }
            assertThrows(EOFException.class, () -> in.next(28));
        }
    }

    @Test
    void aBurstOfHeadersIsReadWithOneCall() throws Exception {
        byte[] bytes = new byte[64 * 28];
        for (int i = 0; i < 64; i++) {
            bytes[i * 28] = (byte) i;
        }
        Trickle ch = new Trickle(bytes, 1, Integer.MAX_VALUE - 1);
        RequestStream in = new RequestStream(ch, new PayloadBuffers());
        for (int i = 0; i < 64; i++) {
            assertEquals(i, in.next(28).get(0));
        }
        assertEquals(1, ch.reads);
    }

    @Test
    void aPeerThatClosesInsideAHeaderEndsTheStream() throws Exception {
        RequestStream in = new RequestStream(new Trickle(new byte[40], 2, 7), new PayloadBuffers());
        assertEquals(28, in.next(28).remaining());
        assertThrows(EOFException.class, () -> in.next(28)); // 12 bytes, then the end
    }

    @Test
    void moreThanTheReadAheadHoldsIsRefused() throws Exception {
        RequestStream in = new RequestStream(new Trickle(new byte[RequestStream.SIZE], 3, 1000), new PayloadBuffers());
        assertThrows(IllegalArgumentException.class, () -> in.next(RequestStream.SIZE + 1));
        assertEquals(RequestStream.SIZE, in.next(RequestStream.SIZE).remaining());
    }

    @Test
    void theReadAheadIsAPooledBufferGivenBackOnClose() {
        PayloadBuffers pool = new PayloadBuffers();
        ByteBuffer idle = pool.take(RequestStream.SIZE);
        pool.give(idle);
        RequestStream in = new RequestStream(new Trickle(new byte[0], 4, 1), pool);
        assertNotSame(idle, pool.take(RequestStream.SIZE), "the stream holds the idle buffer");
        in.close();
        assertSame(idle, pool.take(RequestStream.SIZE), "and gave it back");
    }
}
